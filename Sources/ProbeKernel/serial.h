/* Polled 16550 UART output on COM1, the only channel the probe reports on. */
#ifndef PROBE_SERIAL_H
#define PROBE_SERIAL_H

void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);
void serial_flush(void);

#endif
