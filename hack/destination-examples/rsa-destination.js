// A destination that verifies RSA-signed deliveries as outbound-webhooks-rsa describes:
// it knows only the Base64 public key (status.destinations[].publicKey) and checks the
// Base64 RSA-PKCS1v15 SHA-256 signature of the raw body in the signature header. It
// prints one JSON line per request.
const crypto = require('crypto');
const http = require('http');

const publicKey = crypto.createPublicKey({
  key: Buffer.from(process.env.PUBLIC_KEY, 'base64'), // Base64-encoded DER public key
  format: 'der',
  type: 'spki',
});
const header = (process.env.SIGNATURE_HEADER || 'X-Hookgate-Signature').toLowerCase();

http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks); // the raw request body, not parsed JSON
    const signature = Buffer.from(req.headers[header] || '', 'base64');
    const valid = crypto.verify('RSA-SHA256', rawBody, publicKey, signature);
    console.log(JSON.stringify({ verified: valid, webhookId: req.headers['x-hookgate-webhook-id'] }));
    res.writeHead(valid ? 200 : 401).end(valid ? 'ok' : 'invalid signature');
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`Server listening at http://localhost:${process.env.PORT}`);
});
