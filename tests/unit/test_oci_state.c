/* state.json: the stored record round-trips every field, `state` output matches runc's
 * bytes, hook state matches runtime-spec's State, and bad records name the field. */
#include <stdlib.h>
#include <string.h>

#include "runcell/oci.h"
#include "runcell/util.h"
#include "unit.h"

static struct oci_key_value sample_annotations[] = {
    {"org.z", "last"},
    {"io.a", "<b>&"},
};

static struct oci_state sample(void) {
  return (struct oci_state){
      .oci_version = "1.2.0",
      .id = "c1",
      .status = OCI_STATUS_RUNNING,
      .pid = 4242,
      .pid_start_time = 123456789012ULL,
      .bundle = "/srv/bundle",
      .rootfs = "/srv/bundle/rootfs",
      .created = "2024-01-02T03:04:05.120000000Z",
      .owner = "",
      .cgroup_path = "/runcell/c1",
      .mode = "native",
      .annotations = sample_annotations,
      .n_annotations = RC_ARRAY_SIZE(sample_annotations),
      .systemd_cgroup = true,
      .use_terminal = true,
  };
}

static void test_status_names(void) {
  static const char *const names[] = {"creating", "created", "running", "stopped", "paused"};
  for (int i = 0; i < 5; i++) {
    CHECK_STR_EQ(oci_status_name((enum oci_status)i), names[i]);
    CHECK(oci_status_from_name(names[i]) == i);
  }
  CHECK(oci_status_from_name("exited") == -1);
  CHECK(oci_status_from_name(NULL) == -1);
}

static void test_round_trip(void) {
  struct oci_state in = sample();
  char *json = oci_state_to_json(&in);
  CHECK(json != NULL);
  struct rc_error err = {0};
  struct oci_state *out = NULL;
  int r = oci_state_parse(json, strlen(json), &out, &err);
  if (r < 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(r == 0);
  free(json);
  if (!out) return;
  CHECK_STR_EQ(out->oci_version, "1.2.0");
  CHECK_STR_EQ(out->id, "c1");
  CHECK(out->status == OCI_STATUS_RUNNING);
  CHECK(out->pid == 4242);
  CHECK(out->pid_start_time == 123456789012ULL);
  CHECK_STR_EQ(out->bundle, "/srv/bundle");
  CHECK_STR_EQ(out->rootfs, "/srv/bundle/rootfs");
  CHECK_STR_EQ(out->created, "2024-01-02T03:04:05.120000000Z");
  CHECK_STR_EQ(out->owner, "");
  CHECK_STR_EQ(out->cgroup_path, "/runcell/c1");
  CHECK_STR_EQ(out->mode, "native");
  CHECK(out->n_annotations == 2);
  if (out->n_annotations == 2) {
    /* The store keeps the config's order. */
    CHECK_STR_EQ(out->annotations[0].key, "org.z");
    CHECK_STR_EQ(out->annotations[1].value, "<b>&");
  }
  CHECK(out->systemd_cgroup && out->use_terminal);

  /* Serializing again gives the same text. */
  char *again = oci_state_to_json(out);
  char *first = oci_state_to_json(&in);
  CHECK_STR_EQ(again, first);
  free(again);
  free(first);
  oci_state_free(out);

  /* Optional fields may be absent. */
  struct oci_state bare = {.oci_version = "1.2.0", .id = "x", .status = OCI_STATUS_CREATING};
  json = oci_state_to_json(&bare);
  out = NULL;
  CHECK(oci_state_parse(json, strlen(json), &out, &err) == 0);
  free(json);
  if (!out) return;
  CHECK(out->status == OCI_STATUS_CREATING && out->pid == 0);
  CHECK(out->bundle == NULL && out->mode == NULL && out->n_annotations == 0);
  CHECK(!out->systemd_cgroup && !out->use_terminal);
  oci_state_free(out);
}

static void test_runc_format(void) {
  struct oci_state st = sample();
  char *json = oci_state_to_runc_json(&st);
  /* runc: json.MarshalIndent(cs, "", "  ") of its containerState; Go sorts map keys,
   * escapes HTML characters, and trims trailing zeros off the time's fraction. */
  CHECK_STR_EQ(json,
               "{\n"
               "  \"ociVersion\": \"1.2.0\",\n"
               "  \"id\": \"c1\",\n"
               "  \"pid\": 4242,\n"
               "  \"status\": \"running\",\n"
               "  \"bundle\": \"/srv/bundle\",\n"
               "  \"rootfs\": \"/srv/bundle/rootfs\",\n"
               "  \"created\": \"2024-01-02T03:04:05.12Z\",\n"
               "  \"annotations\": {\n"
               "    \"io.a\": \"\\u003cb\\u003e\\u0026\",\n"
               "    \"org.z\": \"last\"\n"
               "  },\n"
               "  \"owner\": \"\"\n"
               "}");
  free(json);

  /* Stopped: pid 0; no annotations: the key is omitted; whole seconds: no fraction. */
  st.status = OCI_STATUS_STOPPED;
  st.n_annotations = 0;
  st.created = "2024-01-02T03:04:05.000000000Z";
  json = oci_state_to_runc_json(&st);
  CHECK_STR_EQ(json,
               "{\n"
               "  \"ociVersion\": \"1.2.0\",\n"
               "  \"id\": \"c1\",\n"
               "  \"pid\": 0,\n"
               "  \"status\": \"stopped\",\n"
               "  \"bundle\": \"/srv/bundle\",\n"
               "  \"rootfs\": \"/srv/bundle/rootfs\",\n"
               "  \"created\": \"2024-01-02T03:04:05Z\",\n"
               "  \"owner\": \"\"\n"
               "}");
  free(json);
}

static void test_go_escaping(void) {
  /* Control characters as Go writes them (\u0008, not \b; lowercase hex), line
   * separators escaped, an escaped backslash left alone. */
  struct oci_key_value ann[] = {{"k", "a\bb\fc\x01\\b\xe2\x80\xa8"}};
  struct oci_state st = {.oci_version = "1.2.0",
                         .id = "x",
                         .status = OCI_STATUS_CREATED,
                         .pid = 7,
                         .bundle = "/b",
                         .annotations = ann,
                         .n_annotations = 1};
  char *json = oci_state_to_hook_json(&st);
  CHECK_STR_EQ(json,
               "{\"ociVersion\":\"1.2.0\",\"id\":\"x\",\"status\":\"created\",\"pid\":7,"
               "\"bundle\":\"/b\",\"annotations\":{\"k\":"
               "\"a\\u0008b\\u000cc\\u0001\\\\b\\u2028\"}}");
  free(json);

  /* Invalid UTF-8 in a path is replaced, not dropped. */
  struct oci_state bad = {.oci_version = "1.2.0", .id = "x", .bundle = "/b\xff"};
  json = oci_state_to_runc_json(&bad);
  CHECK_CONTAINS(json, "\"bundle\": \"/b\xef\xbf\xbd\"");
  free(json);
}

static void test_hook_format(void) {
  struct oci_state st = sample();
  st.status = OCI_STATUS_CREATED;
  char *json = oci_state_to_hook_json(&st);
  CHECK_STR_EQ(json,
               "{\"ociVersion\":\"1.2.0\",\"id\":\"c1\",\"status\":\"created\",\"pid\":4242,"
               "\"bundle\":\"/srv/bundle\",\"annotations\":{\"io.a\":\"\\u003cb\\u003e\\u0026\","
               "\"org.z\":\"last\"}}");
  free(json);
  /* pid and annotations are omitted when empty (poststop runs after the process). */
  st.pid = 0;
  st.status = OCI_STATUS_STOPPED;
  st.n_annotations = 0;
  json = oci_state_to_hook_json(&st);
  CHECK_STR_EQ(json,
               "{\"ociVersion\":\"1.2.0\",\"id\":\"c1\",\"status\":\"stopped\","
               "\"bundle\":\"/srv/bundle\"}");
  free(json);
}

static const char *parse_error(const char *text) {
  static struct rc_error err;
  memset(&err, 0, sizeof(err));
  struct oci_state *st = (struct oci_state *)1;
  int r = oci_state_parse(text, strlen(text), &st, &err);
  CHECK(r < 0);
  CHECK(st == NULL);
  if (r == 0) {
    oci_state_free(st);
    return "(parsed successfully)";
  }
  return err.msg;
}

static void test_parse_errors(void) {
  CHECK_CONTAINS(parse_error("{\"id\": "), "state.json: invalid JSON at line 1 column ");
  CHECK_STR_EQ(parse_error("[]"), "state.json: must be a JSON object");
  CHECK_STR_EQ(parse_error("{\"id\": \"x\", \"status\": \"running\"}"),
               "state.json: ociVersion: is required");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"status\": \"running\"}"),
               "state.json: id: is required");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"id\": \"x\", \"status\": \"gone\"}"),
               "state.json: status: unknown status \"gone\"");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"id\": \"x\", \"status\": \"created\", "
                           "\"pid\": -5}"),
               "state.json: pid: must be an integer between 0 and 2147483647");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"id\": \"x\", \"status\": \"created\", "
                           "\"bundle\": 3}"),
               "state.json: bundle: must be a string");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"id\": \"x\", \"status\": \"created\", "
                           "\"annotations\": {\"a\": true}}"),
               "state.json: annotations[\"a\"]: must be a string");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"id\": \"x\", \"status\": \"created\", "
                           "\"useTerminal\": \"yes\"}"),
               "state.json: useTerminal: must be a boolean");
}

UNIT_MAIN("oci_state", UNIT_CASE(test_status_names), UNIT_CASE(test_round_trip),
          UNIT_CASE(test_runc_format), UNIT_CASE(test_go_escaping), UNIT_CASE(test_hook_format),
          UNIT_CASE(test_parse_errors))
