// The destination of webhook-endpoint-jwt's guide, as written there: express, express-jwt
// and jwks-rsa, with trustedIssuer set to hookgate's receiver (its --public-url) and the
// audience its signing.jwt.audience. The tests run it against real deliveries; only the
// configuration comes from the environment, and it prints one JSON line per request.
const express = require('express');
const jwt = require('express-jwt');
const jwksRsa = require('jwks-rsa');

const app = express();
const port = Number(process.env.PORT || 3000);

// Trusted issuer and audience
const trustedIssuer = process.env.TRUSTED_ISSUER;
const audience = process.env.AUDIENCE;

// Middleware to validate the JWT Bearer token
const checkJwt = jwt({
  secret: jwksRsa.expressJwtSecret({
    cache: true, // Enable caching of JWKs
    rateLimit: true,
    jwksRequestsPerMinute: 5, // Prevent attackers from requesting JWKs too frequently
    jwksUri: `${trustedIssuer}/.well-known/jwks.json`
  }),
  audience: audience,
  issuer: trustedIssuer,
  algorithms: ['RS256']
});

// Placeholder for business logic processing
function processBusinessLogic(req, res) {
  console.log(JSON.stringify({
    verified: true, sub: req.user.sub, jti: req.user.jti,
    topic: req.get('X-Pps-Topic'), tenant: req.get('X-Pps-Tenant-Id'),
    webhookId: req.get('X-Pps-Webhook-Id'), triggeredAt: req.get('X-Pps-Triggered-At'),
  }));
  res.send("Business logic processed successfully");
}

// Your API endpoint that requires JWT validation
app.post('/receive-webhook', checkJwt, (req, res) => {
  processBusinessLogic(req, res);
});

// Error handling for unauthorized access
app.use((err, req, res, next) => {
  if (err.name === 'UnauthorizedError') {
    console.log(JSON.stringify({ verified: false, error: err.message }));
    res.status(403).send('Invalid token');
  }
});

app.listen(port, '127.0.0.1', () => {
  console.log(`Server listening at http://localhost:${port}`);
});
