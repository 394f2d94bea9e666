#define _GNU_SOURCE
#include "CDatagrams.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

/* sendmmsg takes at most UIO_MAXIOV (1024) messages; a TFTP window is at most 65535 blocks,
   so the batch goes out in slices of this many. */
enum { slice = 64 };

int drops_send_datagrams(int descriptor, const unsigned char *base, size_t stride, const size_t *lengths,
                         unsigned int count, const struct sockaddr *address, socklen_t address_length) {
    /* One datagram (every lock-step client) costs less with sendto than with sendmmsg. */
    if (count == 1) {
        ssize_t sent;
        do {
            sent = sendto(descriptor, base, lengths[0], 0, address, address_length);
        } while (sent < 0 && errno == EINTR);
        return sent < 0 ? -1 : 1;
    }
    struct mmsghdr messages[slice];
    struct iovec vectors[slice];
    unsigned int done = 0;
    while (done < count) {
        unsigned int batch = count - done < slice ? count - done : slice;
        memset(messages, 0, sizeof(struct mmsghdr) * batch);
        for (unsigned int i = 0; i < batch; i++) {
            vectors[i].iov_base = (void *)(base + stride * (done + i));
            vectors[i].iov_len = lengths[done + i];
            messages[i].msg_hdr.msg_name = (void *)address;
            messages[i].msg_hdr.msg_namelen = address_length;
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        int sent = sendmmsg(descriptor, messages, batch, 0);
        if (sent < 0) {
            if (errno == EINTR) continue;
            return done > 0 ? (int)done : -1;
        }
        done += (unsigned int)sent;
        if ((unsigned int)sent < batch) break;
    }
    return (int)done;
}
