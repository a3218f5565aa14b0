import { appSettingsSchema, callBody, deployBody, type DeployOutcome } from '../apps/index.js';
import type { ApiContext } from './context.js';
import { header, isJsonContent, parseJson, queryOf, readBody, sendJson, validateValue } from './http-util.js';
import type { Route } from './router.js';
import { invokeQuery } from './schemas.js';

/** 201 for a new app, 202 when recorded but the runner is away, 200 otherwise. */
function deployStatus(o: DeployOutcome): number {
  if (!o.applied) return 202;
  return o.previous === null && !o.unchanged ? 201 : 200;
}

/**
 *   GET    /v1/apps                  desired apps with their runner state
 *   GET    /v1/apps/:name
 *   PUT    /v1/apps/:name            deploy: JSON {module, kind, args, env, limits, pool, ...}, or the module
 *                                    bytes (settings in header x-app-spec, signature in x-module-signature)
 *   POST   /v1/apps/:name/stop       undeploy, keep the spec
 *   POST   /v1/apps/:name/start
 *   DELETE /v1/apps/:name            undeploy and forget
 *   POST   /v1/apps/:name/call       {fn, args, limits} -> {ok, results | reason, stats}
 *   POST   /v1/apps/:name/invoke     body: stdin bytes -> stdout bytes (x-exit-* headers), or ?format=json
 */
export function appRoutes(ctx: ApiContext): Route[] {
  const { core } = ctx;
  return [
    { method: 'GET', path: '/v1/apps', handler: async (_q, res) => sendJson(res, 200, { apps: await core.apps.list() }) },
    { method: 'GET', path: '/v1/apps/:name', handler: async (_q, res, p) => sendJson(res, 200, await core.apps.get(p[0]!)) },
    {
      method: 'PUT',
      path: '/v1/apps/:name',
      handler: async (req, res, p) => {
        const name = p[0]!;
        const where = `PUT /v1/apps/${name}`;
        let out: DeployOutcome;
        if (isJsonContent(req)) {
          const body = parseJson(await readBody(req, ctx.maxJsonBytes), deployBody, where);
          const { module, ...settings } = body;
          out = await core.apps.deploy(name, settings, { kind: 'stored', ref: module });
        } else {
          const specHeader = header(req, 'x-app-spec');
          const settings = specHeader ? parseJson(specHeader, appSettingsSchema, `${where}: header x-app-spec`) : {};
          const signature = header(req, 'x-module-signature');
          out = await ctx.uploads.run(async () => {
            const bytes = await readBody(req, core.maxModuleBytes, 'module');
            return core.apps.deploy(name, settings, { kind: 'bytes', bytes, nameModule: true, ...(signature ? { signature } : {}) });
          });
        }
        sendJson(res, deployStatus(out), out);
      },
      bodyLimit: (req) => (isJsonContent(req) ? ctx.maxJsonBytes : core.maxModuleBytes),
    },
    { method: 'POST', path: '/v1/apps/:name/stop', handler: async (_q, res, p) => sendJson(res, 200, await core.apps.stop(p[0]!)) },
    { method: 'POST', path: '/v1/apps/:name/start', handler: async (_q, res, p) => sendJson(res, 200, await core.apps.start(p[0]!)) },
    { method: 'DELETE', path: '/v1/apps/:name', handler: async (_q, res, p) => sendJson(res, 200, { removed: await core.apps.remove(p[0]!) }) },
    {
      method: 'POST',
      path: '/v1/apps/:name/call',
      handler: async (req, res, p) => {
        const body = parseJson(await readBody(req, ctx.maxJsonBytes), callBody, `POST /v1/apps/${p[0]!}/call`);
        sendJson(res, 200, await core.apps.call(p[0]!, body));
      },
    },
    {
      method: 'POST',
      path: '/v1/apps/:name/invoke',
      handler: async (req, res, p) => {
        const q = validateValue(queryOf(req), invokeQuery, `POST /v1/apps/${p[0]!}/invoke: query`);
        const stdin = await readBody(req, ctx.maxInvokeBytes, 'invoke input');
        const r = await core.apps.invoke(p[0]!, stdin);
        if (q.format === 'json') {
          sendJson(res, 200, { ...r.head, stdout: Buffer.from(r.stdout).toString('base64') });
          return;
        }
        const headers: Record<string, string | number> = {
          'content-type': 'application/octet-stream',
          'content-length': r.stdout.length,
          'x-exit-code': r.head.exitCode,
          'x-exit-reason': r.head.reason,
          'x-run-stats': JSON.stringify(r.head.stats),
        };
        if (r.head.message) headers['x-exit-message'] = encodeURIComponent(r.head.message.slice(0, 2000));
        res.writeHead(200, headers);
        res.end(r.stdout);
      },
      bodyLimit: () => ctx.maxInvokeBytes,
    },
  ];
}
