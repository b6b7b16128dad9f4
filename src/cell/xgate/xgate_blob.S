/* runcell-xgate, carried inside runcell (src/cell/xgate_host.c writes it to a memfd). */
	.section .rodata
	.balign 16
	.globl rc_xgate_blob
rc_xgate_blob:
	.incbin XGATE_BINARY
	.globl rc_xgate_blob_end
rc_xgate_blob_end:
	.section .note.GNU-stack,"",@progbits
