# runcell-xgate: the cell loader and cell kernel of the MPK placement (src/cell/xgate). A
# freestanding static program linked at a fixed address (32 TiB: above AddressSanitizer's
# shadow, which ends near 16 TiB) far from where programs, their
# libraries and their stacks go; runcell carries it inside itself (xgate_blob.S) and hands
# it to each xgate cell as a sealed memfd. Built without the sanitizers and the stack
# protector: it runs inside other programs, on their thread pointer, before any libc.
enable_language(ASM)
set(XGATE_DIR ${CMAKE_SOURCE_DIR}/src/cell/xgate)
add_executable(runcell-xgate ${XGATE_DIR}/xgate_entry.S ${XGATE_DIR}/xgate_loader.c
                             ${XGATE_DIR}/xgate_kernel.c ${XGATE_DIR}/xgate_scan.c
                             ${XGATE_DIR}/xgate_lib.c)
target_include_directories(runcell-xgate PRIVATE ${CMAKE_SOURCE_DIR}/include ${XGATE_DIR})
target_compile_options(runcell-xgate PRIVATE
  -O2 -ffreestanding -fno-builtin -fno-stack-protector
  -fPIE -mgeneral-regs-only -fcf-protection=none -fno-asynchronous-unwind-tables
  -fno-sanitize=all -U_FORTIFY_SOURCE)
target_link_options(runcell-xgate PRIVATE -nostdlib -static $<$<C_COMPILER_ID:GNU>:-no-pie> -fno-sanitize=all
  -Wl,-Ttext-segment=0x200000000000 -Wl,-z,noexecstack -Wl,--build-id=none)

# The gate's syscall instruction and the cell kernel's extent, for the seccomp filter the
# runtime builds (the filter lets through from xgate_syscall_ret what it traps elsewhere).
set(XGATE_LAYOUT ${CMAKE_BINARY_DIR}/xgate_layout.h)
add_custom_command(
  OUTPUT ${XGATE_LAYOUT}
  COMMAND sh ${XGATE_DIR}/xgate_layout.sh $<TARGET_FILE:runcell-xgate> > ${XGATE_LAYOUT}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${XGATE_LAYOUT}.tmp ${XGATE_LAYOUT}
  DEPENDS runcell-xgate ${XGATE_DIR}/xgate_layout.sh
  COMMENT "Reading the xgate cell kernel's layout")
add_custom_target(runcell-xgate-layout DEPENDS ${XGATE_LAYOUT})
set_target_properties(runcell-xgate PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
set(XGATE_BINARY ${CMAKE_BINARY_DIR}/runcell-xgate)
set(XGATE_BLOB_SOURCES ${XGATE_DIR}/xgate_blob.S)
set_source_files_properties(${XGATE_DIR}/xgate_blob.S PROPERTIES
  OBJECT_DEPENDS ${XGATE_BINARY}
  COMPILE_DEFINITIONS "XGATE_BINARY=\"${XGATE_BINARY}\"")
set_source_files_properties(${CMAKE_SOURCE_DIR}/src/cell/xgate_host.c PROPERTIES
  OBJECT_DEPENDS ${XGATE_LAYOUT})
