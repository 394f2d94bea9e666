#ifndef DROPS_DATAGRAMS_H
#define DROPS_DATAGRAMS_H

#include <stddef.h>
#include <sys/socket.h>

/// Sends `count` datagrams to one address with as few sendmmsg calls as possible. Datagram
/// i starts `stride * i` bytes into `base` and is `lengths[i]` bytes long. Returns how many
/// were sent (fewer than `count` when the socket's send buffer filled up), or -1 with errno
/// set when not even the first one could be sent.
int drops_send_datagrams(int descriptor, const unsigned char *base, size_t stride, const size_t *lengths,
                         unsigned int count, const struct sockaddr *address, socklen_t address_length);

#endif
