/* Sizes shared by the gate's assembly and C: 64 stacks of 32 KiB for threads inside the
 * cell kernel at the same time (a thread that finds none free waits). */
#ifndef XGATE_LAYOUT_CONSTS_H
#define XGATE_LAYOUT_CONSTS_H
#define XG_NSTACKS 64
#define XG_STACK_SHIFT 15
#endif
