// The partner-events-api seed page's "JavaScript Example", as written. Filled in: the
// address, the API key and the secret ({{...}} marks are replaced by the test).
const crypto = require('crypto');

async function sendWebhookEvent(apiKey, secret, eventData) {
  // Generate timestamp
  const timestamp = Math.floor(Date.now() / 1000).toString();
  
  // Prepare the payload
  const payload = JSON.stringify(eventData);
  
  // Create signature
  const signaturePayload = `${timestamp}.${payload}`;
  const signature = crypto
    .createHmac('sha256', secret)
    .update(signaturePayload)
    .digest('hex');
  
  // Send the request
  const response = await fetch('{{URL}}/api/webhooks/events', {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'x-api-key': apiKey,
      'x-webhook-signature': `sha256=${signature}`,
      'x-timestamp': timestamp
    },
    body: payload
  });
  
  return response.json();
}

// Example usage
const event = {
  id: 'evt_' + Date.now(),
  type: 'order.created',
  data: {
    orderId: 'ORD-456',
    amount: 99.99
  }
};

sendWebhookEvent('{{API_KEY}}', '{{SECRET}}', event)
  .then(result => console.log('Event sent:', result))
  .catch(error => console.error('Error:', error));
