/* wasmring.h - the whole freestanding channel library: CRC32C, SHA-256, frames, SPSC rings, the region. */
#ifndef WASMRING_H
#define WASMRING_H
#include "crc32c.h"
#include "frame.h"
#include "region.h"
#include "ring.h"
#include "sha256.h"
#include "wr_base.h"
#endif
