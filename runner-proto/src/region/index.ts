export { Region } from './region.js';
export type { RegionInfo, RingMemory } from './region.js';
export {
  CTRL_DOORBELL,
  CTRL_HEAD,
  CTRL_RESET_ACK,
  CTRL_RESET_REQ,
  CTRL_TAIL,
  CTRL_WANT_KICK,
  DATA_OFFSET,
  LAYOUT_VERSION,
  REGION_MAGIC,
  RING_CTRL_OFFSET as RING_CTRL_OFFSETS,
  SIDE_EPOCH,
  SIDE_HEARTBEAT,
  SIDE_STATE,
  Side,
  regionSizeFor,
  ringSizeFor,
} from './layout.js';
