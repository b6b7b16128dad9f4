/* virtio-blk (virtio 1.x 5.2) backed by a file or block device: read, write, flush and
 * get-id requests, served synchronously with preadv/pwritev straight between the file and
 * the guest's buffers. Every request's sector range is checked against the size the disk
 * had when the device was created. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtio_dev.h"

#define SECTOR_SIZE 512u
#define REQ_HEADER_SIZE 16u /* le32 type, le32 reserved (ioprio), le64 sector */
/* Segments per request the driver may use (config seg_max): the header and the status
 * byte take two more descriptors, and the whole chain must fit a queue of 128. */
#define BLK_SEG_MAX 126u

struct blk {
  int fd;
  bool read_only;
  uint64_t size; /* bytes the guest may address: whole sectors only */
  char serial[VIRTIO_BLK_ID_BYTES];
};

/* preadv/pwritev until the whole vector is done; false on an error or end of file. */
static bool transfer(int fd, struct iovec *iov, unsigned n, uint64_t off, bool write) {
  while (n > 0) {
    ssize_t done =
        write ? pwritev(fd, iov, (int)n, (off_t)off) : preadv(fd, iov, (int)n, (off_t)off);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return false;
    off += (uint64_t)done;
    while (n > 0 && (size_t)done >= iov->iov_len) {
      done -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + done;
      iov->iov_len -= (size_t)done;
    }
  }
  return true;
}

/* Whether [sector * 512, + len) lies within the disk, without an overflowing sum. */
static bool in_range(const struct blk *b, uint64_t sector, uint64_t len) {
  if (sector > b->size / SECTOR_SIZE) return false;
  return len <= b->size - sector * SECTOR_SIZE;
}

static uint8_t serve_io(struct blk *b, const struct virtq_chain *chain, uint32_t type,
                        uint64_t sector, uint32_t *data_written) {
  struct iovec iov[VIRTQ_MAX_SIZE];
  bool write = type == VIRTIO_BLK_T_OUT;
  /* a read fills the writable part before the status byte; a write takes the readable
   * part after the header */
  uint64_t len = write ? chain->readable_len - REQ_HEADER_SIZE : chain->writable_len - 1u;
  if (write && b->read_only) return VIRTIO_BLK_S_IOERR;
  if (!in_range(b, sector, len)) return VIRTIO_BLK_S_IOERR;
  unsigned n = write ? virtq_chain_iov(chain, false, REQ_HEADER_SIZE, len, iov, VIRTQ_MAX_SIZE)
                     : virtq_chain_iov(chain, true, 0, len, iov, VIRTQ_MAX_SIZE);
  if (!transfer(b->fd, iov, n, sector * SECTOR_SIZE, write)) return VIRTIO_BLK_S_IOERR;
  if (!write) *data_written = (uint32_t)len;
  return VIRTIO_BLK_S_OK;
}

static int64_t serve_request(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                             struct rc_error *err) {
  struct blk *b = dev->model;
  if (chain->readable_len < REQ_HEADER_SIZE)
    return rc_err(err, 0, "request %u: header of %u bytes, not %u", chain->head,
                  chain->readable_len, REQ_HEADER_SIZE);
  if (chain->writable_len < 1)
    return rc_err(err, 0, "request %u: no device-writable status byte", chain->head);
  uint8_t hdr[REQ_HEADER_SIZE];
  virtq_chain_read(chain, 0, hdr, sizeof(hdr));
  uint32_t type;
  uint64_t sector;
  memcpy(&type, hdr, 4);
  memcpy(&sector, hdr + 8, 8);
  type = le32toh(type);
  sector = le64toh(sector);

  uint32_t data_written = 0;
  uint8_t status;
  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
      status = serve_io(b, chain, type, sector, &data_written);
      break;
    case VIRTIO_BLK_T_FLUSH:
      status = b->read_only || fdatasync(b->fd) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      break;
    case VIRTIO_BLK_T_GET_ID: {
      size_t room = chain->writable_len - 1u;
      data_written = (uint32_t)virtq_chain_write(
          chain, 0, b->serial, room < sizeof(b->serial) ? room : sizeof(b->serial));
      status = VIRTIO_BLK_S_OK;
      break;
    }
    default:
      status = VIRTIO_BLK_S_UNSUPP;
      break;
  }
  virtq_chain_write(chain, chain->writable_len - 1u, &status, 1);
  return (int64_t)data_written + 1;
}

static void blk_notify(struct vmm_virtio_dev *dev, unsigned q) {
  virtio_dev_serve(dev, q, serve_request);
}

static void blk_destroy(struct vmm_virtio_dev *dev) {
  struct blk *b = dev->model;
  if (!b) return;
  if (b->fd >= 0) close(b->fd);
  free(b);
}

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk", .notify = blk_notify, .destroy = blk_destroy};

int vmm_virtio_blk_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                          const char *path, bool read_only, const char *serial,
                          struct vmm_virtio_dev **out, struct rc_error *err) {
  *out = NULL;
  struct blk *b = calloc(1, sizeof(*b));
  if (!b) return rc_err(err, errno, "virtio-blk: allocate");
  b->read_only = read_only;
  if (serial) memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
  b->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (b->fd < 0) {
    rc_err(err, errno, "virtio-blk: open %s", path);
    free(b);
    return -1;
  }
  off_t end = lseek(b->fd, 0, SEEK_END); /* a block device's size as well as a file's */
  if (end < 0) {
    rc_err(err, errno, "virtio-blk: size of %s", path);
    close(b->fd);
    free(b);
    return -1;
  }
  b->size = (uint64_t)end / SECTOR_SIZE * SECTOR_SIZE;

  uint64_t features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_FLUSH) |
                      (1ull << VIRTIO_RING_F_INDIRECT_DESC);
  if (read_only) features |= 1ull << VIRTIO_BLK_F_RO;
  struct vmm_virtio_dev *dev;
  if (virtio_dev_new(mem, irq, &blk_ops, VIRTIO_ID_BLOCK, features, 1, &dev, err) < 0) {
    close(b->fd);
    free(b);
    return -1;
  }
  dev->model = b;
  /* struct virtio_blk_config: le64 capacity (sectors) at 0, le32 seg_max at 12 */
  uint64_t capacity = htole64(b->size / SECTOR_SIZE);
  uint32_t seg_max = htole32(BLK_SEG_MAX);
  memcpy(dev->config, &capacity, 8);
  memcpy(dev->config + 12, &seg_max, 4);
  dev->config_len = 24;
  *out = dev;
  return 0;
}
