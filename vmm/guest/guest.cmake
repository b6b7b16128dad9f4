# The microVM guest agent (PID 1 of every guest) and the initrd that carries it. Included by
# the top CMakeLists.txt.
#
# The agent is a static binary (it runs alone in the initrd) and so is built without the
# sanitizers, which cannot link statically: the target's own options replace the
# directory's, as for runcell-syscall-probe. It shares the protocol codec with the core
# library by compiling src/agent_proto.c (libc only) in.
file(GLOB RUNCELL_AGENT_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/vmm/guest/*.c)
add_executable(runcell-agent ${RUNCELL_AGENT_SOURCES} ${CMAKE_SOURCE_DIR}/src/agent_proto.c
                             ${CMAKE_SOURCE_DIR}/src/sysctl_path.c
                             ${CMAKE_SOURCE_DIR}/src/error.c)
target_include_directories(runcell-agent PRIVATE ${CMAKE_SOURCE_DIR}/include)
set_property(TARGET runcell-agent PROPERTY COMPILE_OPTIONS -Wall -Wextra -Werror -Wshadow
                                           -Wformat=2 -D_GNU_SOURCE -fstack-protector-strong
                                           $<$<C_COMPILER_ID:GNU>:-Wno-format-truncation>)
set_property(TARGET runcell-agent PROPERTY LINK_OPTIONS -static)
set_property(TARGET runcell-agent PROPERTY RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/guest)

# The initrd: a newc cpio written by our own tool, so that /dev/console needs no root.
add_executable(runcell-make-initrd ${CMAKE_SOURCE_DIR}/tools/make_initrd.c)
set_property(TARGET runcell-make-initrd PROPERTY COMPILE_OPTIONS -Wall -Wextra -Werror -Wshadow
                                                 -Wformat=2 -D_GNU_SOURCE)
set_property(TARGET runcell-make-initrd PROPERTY LINK_OPTIONS "")
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/guest/agent.initrd
  COMMAND runcell-make-initrd ${CMAKE_BINARY_DIR}/guest/agent.initrd $<TARGET_FILE:runcell-agent>
  DEPENDS runcell-agent runcell-make-initrd
  COMMENT "Packing the guest agent's initrd")
add_custom_target(agent-initrd ALL DEPENDS ${CMAKE_BINARY_DIR}/guest/agent.initrd)
install(FILES ${CMAKE_BINARY_DIR}/guest/agent.initrd DESTINATION lib/runcell)

# Test driver: plays the host's side of the protocol against a guest booted in QEMU
# (tests/integration/test_guest_agent.py).
add_executable(agent_drive ${CMAKE_SOURCE_DIR}/tests/helpers/agent_drive.c)
target_link_libraries(agent_drive PRIVATE runcell_core)
