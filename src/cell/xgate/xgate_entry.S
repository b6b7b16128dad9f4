/* The MPK gate: the only code of runcell-xgate that changes PKRU or makes syscalls.
 *
 * Every WRPKRU here loads a constant into EAX and compares PKRU with it afterwards (ERIM's
 * call gate), so jumping into the middle of a sequence with another value in EAX ends the
 * process instead of opening the cell kernel's key. The code that runs with the key open
 * runs on one of the cell kernel's own stacks (in key-protected memory), never on the
 * program's, so another thread of the program cannot redirect it by writing to the stack.
 * There is no "open and return" routine: the key is only ever open between the entry of a
 * signal that the gate handles and its exit. */
#define RC_XGATE_FREESTANDING
#include "runcell/xgate.h"
#include "xgate_layout_consts.h"

	.text

/* long xg_syscall(long nr, long a1, ..., long a5, long a6): the gate's syscall
 * instruction. The seccomp filter lets the syscalls the gate traps elsewhere through when
 * they come from here (it compares the instruction pointer with xgate_syscall_ret). */
	.globl xg_syscall
	.type xg_syscall, @function
xg_syscall:
	mov %rdi, %rax
	mov %rsi, %rdi
	mov %rdx, %rsi
	mov %rcx, %rdx
	mov %r8, %r10
	mov %r9, %r8
	mov 8(%rsp), %r9
	syscall
	.globl xgate_syscall_ret
xgate_syscall_ret:
	ret
	.size xg_syscall, .-xg_syscall

/* The SIGSYS and SIGILL handler: rdi = signal, rsi = siginfo, rdx = ucontext, the
 * kernel's return address (xgate_restorer) on the stack. */
	.globl xgate_signal_entry
	.type xgate_signal_entry, @function
xgate_signal_entry:
	mov %rdx, %r10
	mov $RC_XGATE_PKRU_OPEN, %eax
	xor %ecx, %ecx
	xor %edx, %edx
	wrpkru
	cmp $RC_XGATE_PKRU_OPEN, %eax
	jne xgate_abort
	/* claim one of the cell kernel's stacks */
	lea xgate_stack_busy(%rip), %r8
1:	xor %ecx, %ecx
2:	mov $1, %eax
	xchg %eax, (%r8,%rcx,4)
	test %eax, %eax
	jz 3f
	inc %ecx
	cmp $XG_NSTACKS, %ecx
	jb 2b
	pause
	jmp 1b
3:	mov %rcx, %rax
	shl $XG_STACK_SHIFT, %rax
	lea xgate_stacks(%rip), %r9
	lea (1 << XG_STACK_SHIFT)(%r9,%rax), %r9
	mov %rsp, -8(%r9)
	mov %rcx, -16(%r9)
	mov %rdi, -24(%r9)
	mov %rsi, -32(%r9)
	mov %r10, -40(%r9)
	lea -48(%r9), %rsp
	mov %r10, %rdx
	call xgate_dispatch
	/* rax: the program's own handler to run for this signal, or 0 */
	mov %rax, %r11
	mov 40(%rsp), %r8
	mov 32(%rsp), %rcx
	mov 24(%rsp), %rdi
	mov 16(%rsp), %rsi
	mov 8(%rsp), %r10
	mov %r8, %rsp
	lea xgate_stack_busy(%rip), %r8
	movl $0, (%r8,%rcx,4)
	mov $RC_XGATE_PKRU_CLOSED, %eax
	xor %ecx, %ecx
	xor %edx, %edx
	wrpkru
	cmp $RC_XGATE_PKRU_CLOSED, %eax
	jne xgate_abort
	mov %r10, %rdx
	test %r11, %r11
	jz 4f
	/* the program's handler returns to the kernel's return address, xgate_restorer */
	jmp *%r11
4:	ret
	.size xgate_signal_entry, .-xgate_signal_entry

/* void xgate_exec_and_leave(struct xg_exec_request *req): the end of an execve served by
 * the gate. The exec runs on a fresh stack (req's page, program memory), after the cell
 * kernel's stack is given back: a vfork child (posix_spawn) shares the parent's memory,
 * and a stack it held across a successful exec would stay claimed in the parent forever.
 * If the exec fails, the error goes into the signal frame's RAX and the thread returns
 * from the signal directly (rt_sigreturn with the stack at the frame's ucontext), with the
 * key closed on the way. req: dirfd, path, argv, envp, flags, slot, ucontext, stack top. */
	.globl xgate_exec_and_leave
	.type xgate_exec_and_leave, @function
xgate_exec_and_leave:
	mov 56(%rdi), %rsp
	mov %rdi, %r12
	mov 40(%rdi), %rcx
	lea xgate_stack_busy(%rip), %r9
	movl $0, (%r9,%rcx,4)
	mov $322, %eax /* execveat */
	mov 0(%r12), %rdi
	mov 8(%r12), %rsi
	mov 16(%r12), %rdx
	mov 24(%r12), %r10
	mov 32(%r12), %r8
	syscall
	.globl xgate_exec_syscall_ret
xgate_exec_syscall_ret:
	mov 48(%r12), %r12
	mov %rax, 144(%r12) /* uc_mcontext.gregs[REG_RAX] */
	mov $RC_XGATE_PKRU_CLOSED, %eax
	xor %ecx, %ecx
	xor %edx, %edx
	wrpkru
	cmp $RC_XGATE_PKRU_CLOSED, %eax
	jne xgate_abort
	mov %r12, %rsp
	mov $15, %eax /* rt_sigreturn */
	syscall
	hlt
	.size xgate_exec_and_leave, .-xgate_exec_and_leave

/* Reached only by a jump into the gate with a forged PKRU value: end the process. */
	.globl xgate_abort
	.type xgate_abort, @function
xgate_abort:
	mov $231, %eax /* exit_group */
	mov $139, %edi
	syscall
	hlt
	.size xgate_abort, .-xgate_abort

	.globl xgate_restorer
	.type xgate_restorer, @function
xgate_restorer:
	mov $15, %eax /* rt_sigreturn */
	syscall
	hlt
	.size xgate_restorer, .-xgate_restorer

/* The loader's first instruction: the kernel's initial stack in rdi. */
	.globl _start
	.type _start, @function
_start:
	mov %rsp, %rdi
	and $-16, %rsp
	call xgate_loader_main
	hlt

/* void xgate_enter_program(entry, sp): leaves the loader for the program, with the
 * registers the x86-64 ABI gives a new process (rdx 0: no exit function to register). */
	.globl xgate_enter_program
	.type xgate_enter_program, @function
xgate_enter_program:
	mov %rsi, %rsp
	mov %rdi, %r11
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	xor %esi, %esi
	xor %edi, %edi
	xor %ebp, %ebp
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r12d, %r12d
	xor %r13d, %r13d
	xor %r14d, %r14d
	xor %r15d, %r15d
	jmp *%r11

	.section .note.GNU-stack,"",@progbits
