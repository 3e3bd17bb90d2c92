// A plain js-libp2p peer that joins an Allmende scope topic and prints the records it hears.
//
// Usage: node jsinterop/listen.mjs <daemon multiaddr with /p2p/> <topic> <seconds> [max records]
//                                   [--publish <scope>]
//
// stdout, one JSON object per line:
//   {"event":"up","peer":..., "addrs":[...]}    listening, before it dials the daemon
//   {"event":"ready","peer":..., "daemon":...}   subscribed, and the daemon is in our mesh
//   {"kind":..., "key":..., "scope":..., "seq":..., "origin":..., "body":{...}}   one record
//   {"event":"published", "origin":..., "key":..., "scope":...}   with --publish: once ready,
//     it signs its node record and one `need` (its own fresh Ed25519 key as origin, the
//     "origin" of the ready line) in <scope> and publishes them as one batch, the way
//     an Allmende node does, again every 2 s with the need at its next seq (a daemon
//     takes them once its federation admits the key).
// Diagnostics go to stderr.  Exit 0 after <seconds> or after [max records]; 1 on error;
// 2 if the mesh with the daemon did not form within <seconds>.
// Node 20 lacks Promise.withResolvers (Node 22+), which libp2p 2.x's dependencies
// (mortice -> it-queue) call; install it before the libraries are loaded.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { gossipsub } = await import('@chainsafe/libp2p-gossipsub')
const { identify } = await import('@libp2p/identify')
const { multiaddr } = await import('@multiformats/multiaddr')
const { decode, encode } = await import('@msgpack/msgpack')

const { createHash, generateKeyPairSync, sign } = await import('node:crypto')

const argv = process.argv.slice(2)
let publishScope = null
const at = argv.indexOf('--publish')
if (at >= 0) {
  publishScope = argv[at + 1]
  argv.splice(at, 2)
}
const [addrText, topic, secondsText, maxText] = argv
if (!addrText || !topic || !secondsText || (at >= 0 && !publishScope)) {
  console.error('usage: node listen.mjs <multiaddr/p2p/ID> <topic> <seconds> [max records] [--publish <scope>]')
  process.exit(1)
}
const seconds = Number(secondsText)
const maxRecords = maxText ? Number(maxText) : Infinity

const toJson = (v) => {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex')
  if (typeof v === 'bigint') return v.toString()
  if (Array.isArray(v)) return v.map(toJson)
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]))
  }
  return v
}
// An Allmende record: canonical msgpack [2, origin, kind, key, seq, hlc, scope, body, sig];
// the Ed25519 signature covers DOMAIN + the same array without sig (8 elements).  Canonical
// = minimal ints (hlc > 2^53 goes as a BigInt -> uint64, as Python packs it), sorted map keys.
const DOMAIN = Buffer.from('allmende/record/2\0', 'latin1')
const { publicKey, privateKey } = generateKeyPairSync('ed25519')
const origin = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url')
const signed = (kind, key, seq, scope, body) => {
  const hlc = BigInt(Date.now()) << 16n
  const sorted = Object.fromEntries(Object.keys(body).sort().map((k) => [k, body[k]]))
  const fields = [2, new Uint8Array(origin), kind, key, seq, hlc, scope, sorted]
  const opts = { useBigInt64: true }
  const sig = sign(null, Buffer.concat([DOMAIN, encode(fields, opts)]), privateKey)
  return { origin: origin.toString('hex'), raw: encode([...fields, new Uint8Array(sig)], opts) }
}

// A gossip message: the batch version byte (2), then each record as an unsigned
// LEB128 length and the record's bytes.
const BATCH_VERSION = 2
const encodeBatch = (raws) => {
  const parts = [Uint8Array.of(BATCH_VERSION)]
  for (const raw of raws) {
    const len = []
    let n = raw.length
    while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
    len.push(n)
    parts.push(Uint8Array.from(len), raw)
  }
  return Buffer.concat(parts)
}
const decodeBatch = (data) => {
  if (data.length === 0 || data[0] !== BATCH_VERSION) throw new Error('not a version 2 batch')
  const raws = []
  let pos = 1
  while (pos < data.length) {
    let n = 0
    let shift = 0
    for (;;) {
      if (pos >= data.length || shift > 28) throw new Error('bad length prefix')
      const b = data[pos++]
      n |= (b & 0x7f) << shift
      shift += 7
      if (!(b & 0x80)) break
    }
    if (pos + n > data.length) throw new Error('truncated record')
    raws.push(data.subarray(pos, pos + n))
    pos += n
  }
  return raws
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

// SHA-256 of a domain tag, the topic (4-byte big-endian length, then its bytes) and the data.
const ID_DOMAIN = Buffer.from('allmende/gossip-id/1\0', 'latin1')
const contentMessageId = (msg) => {
  const topic = Buffer.from(msg.topic, 'utf8')
  const len = Buffer.alloc(4)
  len.writeUInt32BE(topic.length)
  return new Uint8Array(createHash('sha256').update(ID_DOMAIN).update(len).update(topic)
    .update(msg.data).digest())
}

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      // Allmende's gossip: unsigned messages (every record in a batch is signed by its
      // origin), identified by a hash of their topic and data (node/net/pubsub.py
      // content_message_id).
      globalSignaturePolicy: 'StrictNoSign',
      msgIdFn: contentMessageId,
      emitSelf: false,
      heartbeatInterval: 1000,
      allowPublishToZeroTopicPeers: true
    })
  }
})

let printed = 0
let timer
let poll
const finish = async (code) => {
  clearTimeout(timer)
  clearInterval(poll)
  try { await node.stop() } catch (err) { console.error('stop:', err) }
  process.exit(code)
}

const daemon = multiaddr(addrText)
const daemonId = daemon.getPeerId()
let ready = false

node.services.pubsub.addEventListener('message', (evt) => {
  const msg = evt.detail
  if (msg.topic !== topic) return
  let batch
  try {
    batch = decodeBatch(msg.data)
  } catch (err) {
    console.error('undecodable gossip message:', err.message)
    return
  }
  for (const raw of batch) {
    try {
      const r = decode(raw, { useBigInt64: true })
      // [2, origin, kind, key, seq, hlc, scope, body, sig]
      out({
        kind: r[2], key: r[3], scope: r[6], seq: toJson(r[4]),
        origin: toJson(r[1]), body: r[7] === null ? null : toJson(r[7])
      })
    } catch (err) {
      console.error('undecodable record:', err.message)
      continue
    }
    if (++printed >= maxRecords) finish(0)
  }
})

timer = setTimeout(() => finish(ready ? 0 : 2), seconds * 1000)

out({ event: 'up', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })

try {
  node.services.pubsub.subscribe(topic)
  await node.dial(daemon, { signal: AbortSignal.timeout(Math.min(seconds, 15) * 1000) })
} catch (err) {
  console.error('dial failed:', err)
  await finish(1)
}

// Ready once the daemon is in our mesh for the topic (GRAFT sent; the daemon then
// forwards what it publishes to us).
poll = setInterval(() => {
  const mesh = node.services.pubsub.getMeshPeers(topic).map(String)
  if (mesh.includes(daemonId)) {
    clearInterval(poll)
    ready = true
    const conn = node.getConnections().find((c) => c.remotePeer.toString() === daemonId)
    const proto = node.services.pubsub.streamsOutbound?.get(daemonId)?.protocol
    out({ event: 'ready', peer: node.peerId.toString(), daemon: daemonId,
          encryption: conn?.encryption, multiplexer: conn?.multiplexer, protocol: proto ?? null,
          origin: origin.toString('hex') })
    if (publishScope) {
      const key = 'js-' + Date.now().toString(36)
      const nodeRec = signed('node', 'self', 1, publishScope,
        { name: 'js peer', kind: 'commune', scope: publishScope })
      // A gossip message is its content (its id is a hash of it): publishing the same
      // batch again would be a duplicate, so each round carries the need once more
      // under its next seq (a newer version of the same record).
      let seq = 2
      const publish = () => {
        const rec = signed('need', key, seq++, publishScope, {
          item: 'potatoes', qty: '7', unit: 'kg', period: '2027-Q1', priority: 'low'
        })
        return node.services.pubsub.publish(topic, encodeBatch([nodeRec.raw, rec.raw]))
          .then((res) => out({ event: 'published', origin: rec.origin, key, scope: publishScope,
                               recipients: res.recipients.map(String) }))
          .catch((err) => { console.error('publish failed:', err); finish(1) })
      }
      publish()
      setInterval(publish, 2000)
    }
  }
}, 100)
