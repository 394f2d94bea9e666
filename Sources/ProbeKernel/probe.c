/*
 * Probe kernel: reports on COM1 exactly what a Multiboot 1 loader handed
 * over, one fact per "\r\n"-terminated line, then leaves QEMU through
 * isa-debug-exit or halts.  Line format (parsed by tests, keep stable):
 *
 *   DROPS-PROBE hello version=1
 *   DROPS-PROBE boot magic=0x%08x flags=0x%08x cmdline="..."
 *   DROPS-PROBE boot magic=0x%08x error="not loaded by a multiboot loader"
 *   DROPS-PROBE loader name="..."                  (flags bit 9 only)
 *   DROPS-PROBE mem lower=%u upper=%u | DROPS-PROBE mem none
 *   DROPS-PROBE module %u start=0x%08x size=%u sha256=%64x cmdline="..."
 *   DROPS-PROBE text %u text="..."   (a module that starts with "#!": a
 *                                      configuration file, as roottask reads it)
 *   DROPS-PROBE end modules=%u
 *
 * Quoted strings escape '"' and '\' with a backslash and bytes outside
 * 0x20..0x7e as \xNN (lowercase hex); more than 4096 bytes end in "...".
 */
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "serial.h"
#include "sha256.h"

#define MB_BOOT_MAGIC 0x2badb002u

#define MBI_MEMORY      (1u << 0)
#define MBI_CMDLINE     (1u << 2)
#define MBI_MODS        (1u << 3)
#define MBI_LOADER_NAME (1u << 9)

#define QUOTE_LIMIT 4096u

/* isa-debug-exit: QEMU exits with (value << 1) | 1, i.e. 33 for 0x10. */
#define DEBUG_EXIT_PORT  0xf4
#define DEBUG_EXIT_VALUE 0x10

/* Multiboot 1 information structure, only the fields the probe reads. */
struct mb_info {
    uint32_t flags;
    uint32_t mem_lower;
    uint32_t mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length;
    uint32_t mmap_addr;
    uint32_t drives_length;
    uint32_t drives_addr;
    uint32_t config_table;
    uint32_t boot_loader_name;
};

struct mb_module {
    uint32_t mod_start;
    uint32_t mod_end;     /* first byte after the module */
    uint32_t string;
    uint32_t reserved;
};

void probe_main(uint32_t magic, uint32_t info_addr);

static const char hex_digits[] = "0123456789abcdef";

/* GCC may emit calls to these for struct copies even when freestanding. */
void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

static void put_hex32(uint32_t v)
{
    char buf[11] = "0x";
    for (int i = 0; i < 8; i++) {
        buf[2 + i] = hex_digits[(v >> (28 - 4 * i)) & 15];
    }
    buf[10] = 0;
    serial_puts(buf);
}

static void put_dec(uint32_t v)
{
    char buf[11];
    int i = sizeof buf - 1;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    serial_puts(&buf[i]);
}

static void put_escaped_byte(uint8_t c)
{
    if (c == '"' || c == '\\') {
        serial_putc('\\');
        serial_putc((char)c);
    } else if (c < 0x20 || c >= 0x7f) {
        serial_putc('\\');
        serial_putc('x');
        serial_putc(hex_digits[c >> 4]);
        serial_putc(hex_digits[c & 15]);
    } else {
        serial_putc((char)c);
    }
}

/* Physical address 0 stands for "absent", matching how loaders leave unset pointers. */
static void put_quoted(uint32_t addr)
{
    const uint8_t *s = (const uint8_t *)(uintptr_t)addr;
    serial_putc('"');
    if (s) {
        uint32_t i;
        for (i = 0; i < QUOTE_LIMIT && s[i]; i++) {
            put_escaped_byte(s[i]);
        }
        if (i == QUOTE_LIMIT && s[i]) {
            serial_puts("...");
        }
    }
    serial_putc('"');
}

/* A module's bytes are not NUL-terminated: quote exactly `len` of them. */
static void put_quoted_bytes(const uint8_t *s, uint32_t len)
{
    uint32_t n = len < QUOTE_LIMIT ? len : QUOTE_LIMIT;
    serial_putc('"');
    for (uint32_t i = 0; i < n; i++) {
        put_escaped_byte(s[i]);
    }
    if (len > n) {
        serial_puts("...");
    }
    serial_putc('"');
}

static void put_sha256(const void *data, uint32_t len)
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    sha256(data, len, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = hex_digits[digest[i] >> 4];
        hex[2 * i + 1] = hex_digits[digest[i] & 15];
    }
    hex[2 * SHA256_DIGEST_SIZE] = 0;
    serial_puts(hex);
}

static void line_start(const char *what)
{
    serial_puts("DROPS-PROBE ");
    serial_puts(what);
}

static void line_end(void)
{
    serial_puts("\r\n");
}

static void report_modules(const struct mb_info *mbi)
{
    uint32_t count = 0;

    if (mbi->flags & MBI_MODS) {
        count = mbi->mods_count;
        const struct mb_module *mods = (const struct mb_module *)(uintptr_t)mbi->mods_addr;
        /* A count with no table would mean reading the IVT; report the count only. */
        for (uint32_t i = 0; mods && i < count; i++) {
            const struct mb_module *m = &mods[i];
            int inverted = m->mod_end < m->mod_start;
            uint32_t size = inverted ? 0 : m->mod_end - m->mod_start;

            line_start("module ");
            put_dec(i);
            serial_puts(" start=");
            put_hex32(m->mod_start);
            serial_puts(" size=");
            put_dec(size);
            serial_puts(" sha256=");
            put_sha256((const void *)(uintptr_t)m->mod_start, size);
            serial_puts(" cmdline=");
            put_quoted(m->string);
            if (inverted) {
                serial_puts(" error=\"mod_end below mod_start\"");
            }
            line_end();

            const uint8_t *bytes = (const uint8_t *)(uintptr_t)m->mod_start;
            if (size >= 2 && bytes[0] == '#' && bytes[1] == '!') {
                line_start("text ");
                put_dec(i);
                serial_puts(" text=");
                put_quoted_bytes(bytes, size);
                line_end();
            }
        }
    }

    line_start("end modules=");
    put_dec(count);
    line_end();
}

static void report(uint32_t magic, uint32_t info_addr)
{
    line_start("hello version=1");
    line_end();

    line_start("boot magic=");
    put_hex32(magic);
    if (magic != MB_BOOT_MAGIC) {
        /* EBX means nothing without the magic, so do not touch it. */
        serial_puts(" error=\"not loaded by a multiboot loader\"");
        line_end();
        return;
    }

    const struct mb_info *mbi = (const struct mb_info *)(uintptr_t)info_addr;
    serial_puts(" flags=");
    put_hex32(mbi->flags);
    serial_puts(" cmdline=");
    put_quoted((mbi->flags & MBI_CMDLINE) ? mbi->cmdline : 0);
    line_end();

    if (mbi->flags & MBI_LOADER_NAME) {
        line_start("loader name=");
        put_quoted(mbi->boot_loader_name);
        line_end();
    }

    if (mbi->flags & MBI_MEMORY) {
        line_start("mem lower=");
        put_dec(mbi->mem_lower);
        serial_puts(" upper=");
        put_dec(mbi->mem_upper);
    } else {
        line_start("mem none");
    }
    line_end();

    report_modules(mbi);
}

void probe_main(uint32_t magic, uint32_t info_addr)
{
    serial_init();
    report(magic, info_addr);
    serial_flush();
    outl(DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE);
    /* Real hardware has nothing on the exit port: stop here for good. */
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
