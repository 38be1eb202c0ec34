/* jemalloc's settings for weft's programs, read by jemalloc when it starts
 * (its `malloc_conf` symbol; MALLOC_CONF in the environment still overrides
 * them). Compiled into each program that links weft::program
 * (cmake/WeftAllocator.cmake), never into weft's libraries.
 *
 * Dirty pages go back to the system after 1 s instead of 10 s and skip the
 * muzzy stage: with jemalloc's defaults the node's peak resident memory while
 * counting 2,000,000 records over 1,000,000 keys on 24 shards was 451 MB
 * against 337-368 MB on glibc's malloc; with these 321-347 MB
 * (weft-bench-state --phase=3, 2026-12-07). */
const char* malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
