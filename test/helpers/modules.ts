/** A valid module made large by a custom section, so transfers and uploads take long enough to interrupt. */
export function bigModule(base: Uint8Array, extra: number): Buffer {
  const name = Buffer.from('padding');
  const payloadLen = 1 + name.length + extra;
  const leb: number[] = [];
  let n = payloadLen;
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    leb.push(b);
  } while (n);
  return Buffer.concat([base, Buffer.from([0, ...leb, name.length]), name, Buffer.alloc(extra, 0x61)]);
}
