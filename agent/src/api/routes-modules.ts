import type { IncomingMessage, ServerResponse } from 'node:http';
import { toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { ApiContext } from './context.js';
import { header, parseJson, queryOf, readBody, sendJson, validateValue } from './http-util.js';
import type { Route } from './router.js';
import { runBody, uploadQuery } from './schemas.js';

/**
 *   GET    /v1/modules              stored modules
 *   POST   /v1/modules/:name        upload (body: the wasm bytes; header x-module-signature; ?kind=)
 *   PUT    /v1/modules/:name        the same
 *   GET    /v1/modules/:name        one module's record
 *   DELETE /v1/modules/:name        remove the name (bytes no app or name refers to are collected)
 *   POST   /v1/modules/:name/run    run a command module; NDJSON output lines, then the exit
 */
export function moduleRoutes(ctx: ApiContext): Route[] {
  const { core } = ctx;
  const upload = async (req: IncomingMessage, res: ServerResponse, name: string): Promise<void> => {
    const q = validateValue(queryOf(req), uploadQuery, `upload ${name}: query`);
    const r = await ctx.uploads.run(async () => {
      const bytes = await readBody(req, core.maxModuleBytes, 'module');
      const signature = header(req, 'x-module-signature');
      const expectedDigest = header(req, 'x-expected-digest');
      return core.upload(bytes, name, { ...(signature ? { signature } : {}), ...(q.kind ? { kind: q.kind } : {}), ...(expectedDigest ? { expectedDigest } : {}) });
    });
    sendJson(res, r.created ? 201 : 200, r);
  };
  return [
    { method: 'GET', path: '/v1/modules', handler: async (_q, res) => sendJson(res, 200, { modules: await core.list() }) },
    { method: 'POST', path: '/v1/modules/:name', handler: (q, r, p) => upload(q, r, p[0]!), bodyLimit: () => core.maxModuleBytes },
    { method: 'PUT', path: '/v1/modules/:name', handler: (q, r, p) => upload(q, r, p[0]!), bodyLimit: () => core.maxModuleBytes },
    { method: 'GET', path: '/v1/modules/:name', handler: async (_q, res, p) => sendJson(res, 200, await core.store.resolve(p[0]!)) },
    { method: 'DELETE', path: '/v1/modules/:name', handler: async (_q, res, p) => sendJson(res, 200, { removed: await core.remove(p[0]!) }) },
    {
      method: 'POST',
      path: '/v1/modules/:name/run',
      // NDJSON: {"stream":"stdout","data":"<base64>"} lines as output arrives, then {"exit":{...}}.
      handler: async (req, res, p) => {
        const name = p[0]!;
        const body = parseJson(await readBody(req, ctx.maxJsonBytes), runBody, `POST /v1/modules/${name}/run`);
        const line = (v: unknown): void => {
          if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          res.write(`${JSON.stringify(v)}\n`);
        };
        const handle = await core.run(name, body, {
          onStdout: (c) => line({ stream: 'stdout', data: Buffer.from(c).toString('base64') }),
          onStderr: (c) => line({ stream: 'stderr', data: Buffer.from(c).toString('base64') }),
        });
        if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.on('close', () => {
          if (!res.writableFinished) void handle.kill(0);
        });
        try {
          line({ exit: await handle.exit });
        } catch (err) {
          line({ error: toAgentError(err).toJSON() });
        }
        res.end();
      },
    },
  ];
}
