/**
 * Imported first by the daemon's entry point, before anything can use libuv's thread pool: libuv reads
 * UV_THREADPOOL_SIZE once, when the pool starts. The default of 4 threads is too few for the agent: every durable
 * write (O_DSYNC writes, fsyncs of blobs, names, directories and the state file) holds a thread for the length of a
 * device flush, and with futex notification one thread stays parked in FUTEX_WAIT, so the other file calls of a
 * deploy queued behind them. An operator's own setting wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '8';
export {};
