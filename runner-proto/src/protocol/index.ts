export {
  CAPABILITIES,
  MsgType,
  PROTOCOL_VERSION,
  digestSchema,
  errorBodySchema,
  exitSchema,
  helloAckSchema,
  helloSchema,
  killSchema,
  limitsSchema,
  moduleBeginSchema,
  moduleEndSchema,
  moduleHaveSchema,
  msgTypeName,
  runSchema,
} from './messages.js';
export type { ExitMessage, Hello, HelloAck, ModuleBegin, MsgTypeName, RunMessage } from './messages.js';
export { JSON_FLAGS, decodeJson, encodeJson } from './json.js';
