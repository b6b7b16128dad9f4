#!/bin/sh
# kvm: kvm_amd is loaded with nested paging, and /dev/kvm answers KVM_GET_API_VERSION (12),
# creates a VM and runs real guest code in it (probes/kvm_probe.c). This is the nested SVM
# that the microVM end-to-end tests run on.
if ! grep -q '^kvm_amd ' /proc/modules; then
  echo "kvm_amd is not loaded:"
  cat /proc/modules
  exit 1
fi
npt=$(cat /sys/module/kvm_amd/parameters/npt)
echo "kvm_amd npt=$npt nested=$(cat /sys/module/kvm_amd/parameters/nested)"
case $npt in
  Y | 1) ;;
  *)
    echo "kvm_amd runs without nested paging (npt=$npt)"
    exit 1
    ;;
esac
if [ ! -c /dev/kvm ]; then
  echo "/dev/kvm is not a character device"
  exit 1
fi
exec kvm_probe
