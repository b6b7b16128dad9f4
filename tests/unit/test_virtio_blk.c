/* virtio-blk against a temporary file, driven by a test guest: reads, writes, flush,
 * get-id, read-only disks, sector bounds, and malformed requests. */
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_virtio_guest.h"
#include "unit.h"

#define SECTORS 64
#define HDR_GPA TG_BUFS
#define STATUS_GPA (TG_BUFS + 0x100)
#define DATA_GPA (TG_BUFS + 0x1000)

/* A temporary disk image of SECTORS sectors (plus `extra` bytes), sector i filled with
 * the byte i. */
static int make_image(char *path, size_t extra) {
  strcpy(path, "/tmp/runcell-test-blk-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  uint8_t sector[512];
  for (int i = 0; i < SECTORS; i++) {
    memset(sector, i, sizeof(sector));
    if (write(fd, sector, sizeof(sector)) != (ssize_t)sizeof(sector)) return -1;
  }
  if (extra && write(fd, sector, extra) != (ssize_t)extra) return -1;
  close(fd);
  return 0;
}

static bool blk_guest(struct tguest *g, const char *path, bool ro, const char *serial) {
  if (tg_init(g, 2 << 20) < 0) return false;
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_blk_create(&g->mem, tg_irq(g), path, ro, serial, &dev, &err) < 0) {
    fprintf(stderr, "blk: %s\n", err.msg);
    vmm_guest_mem_destroy(&g->mem);
    return false;
  }
  tg_attach(g, dev);
  return tg_setup(g, UINT64_MAX, 1, 16);
}

/* One request: the header, `segs` data buffers splitting data_len bytes at DATA_GPA
 * (device-writable for reads and get-id, readable for writes), the status byte. Returns
 * the status, or -1 when the device returned nothing; *used_len gets the used length. */
static int request(struct tguest *g, uint32_t type, uint64_t sector, uint32_t data_len,
                   unsigned segs, uint32_t *used_len) {
  uint8_t *hdr = tg_ptr(g, HDR_GPA, 16);
  memset(hdr, 0, 16);
  memcpy(hdr, &type, 4);
  memcpy(hdr + 8, &sector, 8);
  *(uint8_t *)tg_ptr(g, STATUS_GPA, 1) = 0xee;
  uint16_t data_flags = type == VIRTIO_BLK_T_OUT ? 0 : VRING_DESC_F_WRITE;
  uint16_t i = 0;
  tg_desc(g, 0, i, HDR_GPA, 16, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
  i++;
  for (unsigned s = 0; s < segs; s++, i++) {
    uint32_t part = data_len / segs + (s == segs - 1 ? data_len % segs : 0);
    tg_desc(g, 0, i, DATA_GPA + (uint64_t)s * (data_len / segs), part,
            data_flags | VRING_DESC_F_NEXT, (uint16_t)(i + 1));
  }
  tg_desc(g, 0, i, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
  tg_post(g, 0, 0);
  uint32_t id;
  if (!tg_take_used(g, 0, &id, used_len) || id != 0) return -1;
  return *(uint8_t *)tg_ptr(g, STATUS_GPA, 1);
}

static bool filled_with(const uint8_t *p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return false;
  return true;
}

static void test_config(void) {
  char path[64];
  CHECK(make_image(path, 100) == 0);
  struct tguest g;
  CHECK(blk_guest(&g, path, false, NULL));
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_BLOCK);
  uint64_t capacity = 0;
  g.win.read(g.win.opaque, 0x100, &capacity, 8);
  CHECK(capacity == SECTORS); /* the partial sector at the end is not addressable */
  uint32_t seg_max = 0;
  g.win.read(g.win.opaque, 0x100 + 12, &seg_max, 4);
  CHECK(seg_max >= 1 && seg_max <= 254);
  tg_w32(&g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  uint32_t f = tg_r32(&g, VIRTIO_MMIO_DEVICE_FEATURES);
  CHECK(f & (1u << VIRTIO_BLK_F_FLUSH));
  CHECK(!(f & (1u << VIRTIO_BLK_F_RO)));
  tg_fini(&g);
  unlink(path);
}

static void test_read_write(void) {
  char path[64];
  CHECK(make_image(path, 0) == 0);
  struct tguest g;
  CHECK(blk_guest(&g, path, false, "disk-serial-1"));
  uint8_t *data = tg_ptr(&g, DATA_GPA, 4096);
  uint32_t len = 0;

  /* sectors 2 and 3 into two buffers */
  memset(data, 0, 1024);
  CHECK(request(&g, VIRTIO_BLK_T_IN, 2, 1024, 2, &len) == VIRTIO_BLK_S_OK);
  CHECK(len == 1025);
  CHECK(filled_with(data, 512, 2) && filled_with(data + 512, 512, 3));

  /* the last sector, in three buffers of uneven size */
  CHECK(request(&g, VIRTIO_BLK_T_IN, SECTORS - 1, 512, 3, &len) == VIRTIO_BLK_S_OK);
  CHECK(filled_with(data, 512, SECTORS - 1));

  /* write sector 5 and read it back from the file */
  memset(data, 0xab, 512);
  CHECK(request(&g, VIRTIO_BLK_T_OUT, 5, 512, 1, &len) == VIRTIO_BLK_S_OK);
  CHECK(len == 1);
  uint8_t back[512];
  int fd = open(path, O_RDONLY);
  CHECK(pread(fd, back, 512, 5 * 512) == 512 && filled_with(back, 512, 0xab));
  CHECK(pread(fd, back, 512, 6 * 512) == 512 && filled_with(back, 512, 6));
  close(fd);

  CHECK(request(&g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &len) == VIRTIO_BLK_S_OK);

  memset(data, 0x55, 32);
  CHECK(request(&g, VIRTIO_BLK_T_GET_ID, 0, 20, 1, &len) == VIRTIO_BLK_S_OK);
  CHECK(len == 21);
  CHECK(memcmp(data, "disk-serial-1\0\0\0\0\0\0\0", 20) == 0);

  CHECK(request(&g, 77, 0, 512, 1, &len) == VIRTIO_BLK_S_UNSUPP);
  CHECK(len == 1);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  unlink(path);
}

static void test_out_of_range(void) {
  char path[64];
  CHECK(make_image(path, 0) == 0);
  struct tguest g;
  CHECK(blk_guest(&g, path, false, NULL));
  uint32_t len;
  CHECK(request(&g, VIRTIO_BLK_T_IN, SECTORS, 512, 1, &len) == VIRTIO_BLK_S_IOERR);
  CHECK(len == 1);
  CHECK(request(&g, VIRTIO_BLK_T_IN, SECTORS - 1, 1024, 1, &len) == VIRTIO_BLK_S_IOERR);
  CHECK(request(&g, VIRTIO_BLK_T_OUT, SECTORS - 1, 1024, 2, &len) == VIRTIO_BLK_S_IOERR);
  /* sector * 512 overflows 64 bits */
  CHECK(request(&g, VIRTIO_BLK_T_IN, 1ull << 56, 512, 1, &len) == VIRTIO_BLK_S_IOERR);
  CHECK(request(&g, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, 1, &len) == VIRTIO_BLK_S_IOERR);
  /* the file did not grow */
  int fd = open(path, O_RDONLY);
  CHECK(lseek(fd, 0, SEEK_END) == SECTORS * 512);
  close(fd);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  unlink(path);
}

static void test_read_only(void) {
  char path[64];
  CHECK(make_image(path, 0) == 0);
  struct tguest g;
  CHECK(blk_guest(&g, path, true, NULL));
  tg_w32(&g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_RO));
  uint8_t *data = tg_ptr(&g, DATA_GPA, 512);
  uint32_t len;
  memset(data, 0xcd, 512);
  CHECK(request(&g, VIRTIO_BLK_T_OUT, 1, 512, 1, &len) == VIRTIO_BLK_S_IOERR);
  CHECK(request(&g, VIRTIO_BLK_T_IN, 1, 512, 1, &len) == VIRTIO_BLK_S_OK);
  CHECK(filled_with(data, 512, 1)); /* unchanged */
  CHECK(request(&g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &len) == VIRTIO_BLK_S_OK);
  tg_fini(&g);
  unlink(path);
}

static void test_indirect_read(void) {
  char path[64];
  CHECK(make_image(path, 0) == 0);
  struct tguest g;
  CHECK(blk_guest(&g, path, false, NULL));
  uint64_t table = TG_BUFS + 0x20000;
  uint32_t type = VIRTIO_BLK_T_IN;
  uint64_t sector = 9;
  uint8_t *hdr = tg_ptr(&g, HDR_GPA, 16);
  memset(hdr, 0, 16);
  memcpy(hdr, &type, 4);
  memcpy(hdr + 8, &sector, 8);
  tg_desc_at(&g, table, 0, HDR_GPA, 16, VRING_DESC_F_NEXT, 1);
  tg_desc_at(&g, table, 1, DATA_GPA, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
  tg_desc_at(&g, table, 2, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
  tg_desc(&g, 0, 7, table, 48, VRING_DESC_F_INDIRECT, 0);
  tg_post(&g, 0, 7);
  uint32_t id, len;
  CHECK(tg_take_used(&g, 0, &id, &len) && id == 7 && len == 513);
  CHECK(*(uint8_t *)tg_ptr(&g, STATUS_GPA, 1) == VIRTIO_BLK_S_OK);
  CHECK(filled_with(tg_ptr(&g, DATA_GPA, 512), 512, 9));
  tg_fini(&g);
  unlink(path);
}

static void test_malformed_requests(void) {
  char path[64];
  CHECK(make_image(path, 0) == 0);
  struct tguest g;
  uint32_t id, len;

  /* a header of 8 bytes */
  CHECK(blk_guest(&g, path, false, NULL));
  tg_desc(&g, 0, 0, HDR_GPA, 8, VRING_DESC_F_NEXT, 1);
  tg_desc(&g, 0, 1, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  CHECK(!tg_take_used(&g, 0, &id, &len));
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "header of 8 bytes");
  tg_fini(&g);

  /* a status byte the device may not write */
  CHECK(blk_guest(&g, path, false, NULL));
  memset(tg_ptr(&g, HDR_GPA, 16), 0, 16);
  tg_desc(&g, 0, 0, HDR_GPA, 16, VRING_DESC_F_NEXT, 1);
  tg_desc(&g, 0, 1, STATUS_GPA, 1, 0, 0);
  tg_post(&g, 0, 0);
  CHECK(!tg_take_used(&g, 0, &id, &len));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "no device-writable status byte");
  tg_fini(&g);

  /* the header split over two descriptors is fine */
  CHECK(blk_guest(&g, path, false, NULL));
  uint32_t type = VIRTIO_BLK_T_IN;
  uint64_t sector = 4;
  uint8_t *hdr = tg_ptr(&g, HDR_GPA, 16);
  memset(hdr, 0, 16);
  memcpy(hdr, &type, 4);
  memcpy(hdr + 8, &sector, 8);
  tg_desc(&g, 0, 0, HDR_GPA, 5, VRING_DESC_F_NEXT, 1);
  tg_desc(&g, 0, 1, HDR_GPA + 5, 11, VRING_DESC_F_NEXT, 2);
  tg_desc(&g, 0, 2, DATA_GPA, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
  tg_desc(&g, 0, 3, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  CHECK(tg_take_used(&g, 0, &id, &len) && len == 513);
  CHECK(filled_with(tg_ptr(&g, DATA_GPA, 512), 512, 4));
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  unlink(path);
}

static void test_missing_file(void) {
  struct vmm_guest_mem mem;
  struct rc_error err = {0};
  CHECK(vmm_guest_mem_create(&mem, 2 << 20, &err) == 0);
  struct vmm_virtio_dev *dev = (void *)1;
  CHECK(vmm_virtio_blk_create(&mem, (struct vmm_irq_line){0}, "/nonexistent/disk.img", false, NULL,
                              &dev, &err) < 0);
  CHECK(dev == NULL);
  CHECK_CONTAINS(err.msg, "/nonexistent/disk.img");
  vmm_guest_mem_destroy(&mem);
}

UNIT_MAIN("virtio_blk", UNIT_CASE(test_config), UNIT_CASE(test_read_write),
          UNIT_CASE(test_out_of_range), UNIT_CASE(test_read_only), UNIT_CASE(test_indirect_read),
          UNIT_CASE(test_malformed_requests), UNIT_CASE(test_missing_file))
