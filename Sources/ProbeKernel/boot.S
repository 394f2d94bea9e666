/* Multiboot 1 entry: header, stack setup, hand EAX/EBX to probe_main. */

#define MB_HEADER_MAGIC 0x1badb002
#define MB_PAGE_ALIGN   (1 << 0)   /* modules on 4 KiB boundaries */
#define MB_MEMORY_INFO  (1 << 1)   /* ask for mem_lower/mem_upper */
#define MB_HEADER_FLAGS (MB_PAGE_ALIGN | MB_MEMORY_INFO)

#define STACK_SIZE 16384

        /* Linked first in .text so it sits well inside the first 8 KiB of the file. */
        .section .multiboot, "a"
        .align 4
        .long MB_HEADER_MAGIC
        .long MB_HEADER_FLAGS
        .long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

        .text
        .globl _start
        .type _start, @function
_start:
        cli
        cld
        /* Zero .bss ourselves; not every loader is trusted to; EAX is needed by stosb. */
        movl %eax, %esi
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        xorl %eax, %eax
        rep stosb

        movl $stack_top, %esp
        xorl %ebp, %ebp
        /* Keep ESP 16-byte aligned at the call as the i386 SysV ABI expects. */
        subl $8, %esp
        pushl %ebx              /* multiboot info pointer */
        pushl %esi              /* boot magic */
        call probe_main

halt:
        cli
        hlt
        jmp halt
        .size _start, . - _start

        .section .bss
        .align 16
stack_bottom:
        .skip STACK_SIZE
stack_top:

        .section .note.GNU-stack, "", @progbits
