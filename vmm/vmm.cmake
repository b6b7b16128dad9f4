# Tools of the VMM core (included by the top CMakeLists.txt).
#   runcell-vmm-boot  boots a bare kernel on runcell's VMM, the serial console on stdout,
#                     and prints the stop reason and phase timings (tools/vmm_boot.c):
#                     for the hardware lane and the boot benchmarks.
add_executable(runcell-vmm-boot ${CMAKE_SOURCE_DIR}/tools/vmm_boot.c)
target_link_libraries(runcell-vmm-boot PRIVATE runcell_core)
