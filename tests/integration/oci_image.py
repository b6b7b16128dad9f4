"""Small OCI images built offline from busybox-static, for containerd and podman tests.

No registry is reachable from the test machines, so the image is written as an OCI image
layout (oci-layout, index.json, blobs/sha256/...) packed in a tar archive that `ctr images
import` and `podman load` both accept. The single layer is an uncompressed tar of the same
busybox rootfs the bundle tests use (helpers.make_rootfs).
"""
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from helpers import make_rootfs

IMAGE_NAME = "docker.io/runcell/busybox"
IMAGE_TAG = "test"
IMAGE_REF = f"{IMAGE_NAME}:{IMAGE_TAG}"


def _layer_tar(rootfs):
    """The rootfs as a deterministic tar (sorted, owned by root, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, rootfs))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def _blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def build_image_archive(out_path, cmd=("sh",), env=None, ref=IMAGE_REF):
    """Writes an OCI image layout tar of a busybox image to out_path and returns it.

    The image is annotated with ref (IMAGE_REF by default), so `ctr images import` names it that way and
    `podman load` tags it likewise.
    """
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="rct-image-") as tmp:
        tmp = Path(tmp)
        rootfs = tmp / "rootfs"
        make_rootfs(rootfs)
        layout = tmp / "layout"
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layer = _layer_tar(rootfs)
        layer_digest, layer_size = _blob(blobs, layer)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": env
                or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": list(cmd),
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created_by": "runcell tests: busybox-static rootfs"}],
        }
        config_digest, config_size = _blob(blobs, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
        manifest_digest, manifest_size = _blob(
            blobs, json.dumps(manifest, sort_keys=True).encode()
        )
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                    },
                }
            ],
        }
        (layout / "index.json").write_text(json.dumps(index))
        (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        with tarfile.open(out_path, "w") as tar:
            for entry in sorted(os.listdir(layout)):
                tar.add(layout / entry, arcname=entry)
    return out_path
