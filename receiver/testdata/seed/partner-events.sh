# The partner-events-api seed page's "Signature Generation" recipe and "cURL Example",
# as written. Filled in: the secret, the address, the API key, the payload in place of
# {...} (the curl body is that same payload, so that the signed bytes are the sent
# bytes), and the signature and timestamp that the recipe computes in place of the
# literal abc123... and 1635360000. {{...}} marks are replaced by the test.
SECRET='{{SECRET}}'

# Generate timestamp
TIMESTAMP=$(date +%s)

# Create signature payload
PAYLOAD='{"id":"evt_123","type":"order.created","data":{"orderId":"ORD-456","amount":99.99}}'
SIGNATURE_PAYLOAD="${TIMESTAMP}.${PAYLOAD}"

# Generate HMAC-SHA256 signature
SIGNATURE=$(echo -n "$SIGNATURE_PAYLOAD" | \
  openssl dgst -sha256 -hmac "$SECRET" | cut -d' ' -f2)

curl -X POST {{URL}}/api/webhooks/events \
  -H "Content-Type: application/json" \
  -H "x-api-key: {{API_KEY}}" \
  -H "x-webhook-signature: sha256=${SIGNATURE}" \
  -H "x-timestamp: ${TIMESTAMP}" \
  -d '{"id":"evt_123","type":"order.created","data":{"orderId":"ORD-456","amount":99.99}}'
