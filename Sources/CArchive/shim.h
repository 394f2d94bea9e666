#ifndef DROPS_CARCHIVE_SHIM_H
#define DROPS_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
