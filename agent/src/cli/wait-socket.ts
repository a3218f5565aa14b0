import fs from 'node:fs';
import path from 'node:path';

/** How often the file is looked for besides the directory watch (which can miss: an unwatchable directory). */
const POLL_MS = 250;

/**
 * Resolves once `file` exists, or when `ms` have passed (the caller then fails as it would have at once). The
 * CLI's requests retry a socket that is missing every 50 ms; started beside a booting agent ($WASMEDGE_AGENT_WAIT,
 * the QEMU guest's first deploy) that was an HTTP request, a failed connect and an error with its stack trace
 * each time: under QEMU's TCG a busy loop that took a vCPU from the agent's start for seconds. Here the CLI
 * sleeps in inotify (fs.watch on the directory) until the agent binds; the request's own retry then only
 * covers the moment between the agent's bind and listen.
 */
export async function waitForFile(file: string, ms: number): Promise<void> {
  if (fs.existsSync(file)) return;
  const deadline = Date.now() + ms;
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let watcher: fs.FSWatcher | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      watcher?.close();
      resolve();
    };
    const poll = (): void => {
      if (fs.existsSync(file) || Date.now() >= deadline) finish();
      else timer = setTimeout(poll, Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    };
    try {
      const base = path.basename(file);
      watcher = fs.watch(path.dirname(file), (_event, name) => {
        if ((name === null || name === base) && fs.existsSync(file)) finish();
      });
      // A watch that fails later (the directory removed) leaves the poll to find the file.
      watcher.on('error', () => watcher?.close());
    } catch {
      // No such directory (yet) or no inotify: the poll alone.
    }
    poll();
  });
}
