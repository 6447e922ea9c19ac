#include <isa-l/igzip_lib.h>
#include <isa-l/crc.h>
// ISAL_MAJOR_VERSION and friends (isa-l has no run-time version call).
#include <isa-l.h>
