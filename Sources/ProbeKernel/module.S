/*
 * Stand-in boot module: a valid ELF32 i386 executable whose bulk is a
 * gen-blob payload, so every module has distinct, known contents.
 * Built with -DMODULE_NAME="\"name\"" -DPAYLOAD_FILE="\"path\"".
 */
        .text
        .globl _start
        .type _start, @function
_start:
        /* Never meant to run; park the CPU if something jumps here anyway. */
        cli
        hlt
        jmp _start
        .size _start, . - _start

        .section .rodata
        .globl module_name
module_name:
        .asciz MODULE_NAME

        .balign 16
        .globl payload
payload:
        .incbin PAYLOAD_FILE
payload_end:
        .size payload, payload_end - payload

        .section .note.GNU-stack, "", @progbits
