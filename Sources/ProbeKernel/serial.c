#include <stdint.h>

#include "io.h"
#include "serial.h"

#define COM1 0x3f8

/* 16550 register offsets from the base port. */
#define UART_DATA 0 /* THR on write, divisor low byte while DLAB=1 */
#define UART_IER  1 /* interrupt enable, divisor high byte while DLAB=1 */
#define UART_FCR  2
#define UART_LCR  3
#define UART_MCR  4
#define UART_LSR  5

#define LSR_THR_EMPTY 0x20
#define LSR_TX_IDLE   0x40

/* Bounded so a missing or wedged UART cannot hang the probe forever. */
#define SPIN_LIMIT 1000000u

void serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);   /* polled output only, no interrupts */
    outb(COM1 + UART_LCR, 0x80);   /* DLAB on to reach the divisor latch */
    outb(COM1 + UART_DATA, 0x01);  /* 115200 = 115200 / 1 */
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x03);   /* DLAB off, 8 data bits, no parity, 1 stop */
    outb(COM1 + UART_FCR, 0xc7);   /* enable and clear FIFOs */
    outb(COM1 + UART_MCR, 0x03);   /* DTR and RTS so a modem-controlled peer listens */
}

static void wait_lsr(uint8_t bit)
{
    for (uint32_t i = 0; i < SPIN_LIMIT; i++) {
        if (inb(COM1 + UART_LSR) & bit) {
            return;
        }
    }
}

void serial_putc(char c)
{
    wait_lsr(LSR_THR_EMPTY);
    outb(COM1 + UART_DATA, (uint8_t)c);
}

void serial_puts(const char *s)
{
    while (*s) {
        serial_putc(*s++);
    }
}

void serial_flush(void)
{
    /* Let the shift register drain so the last line survives the exit/halt. */
    wait_lsr(LSR_TX_IDLE);
}
