// The pricing service: GET /price?items=N answers {"items": N, "total": ...}. Its spans (the
// HTTP instrumentation's server span, and "price items" inside it) go to whatever OTLP endpoint
// tracing.js was given: otelstream's receiver, directly or through the collector.
'use strict';

const http = require('http');
const { trace } = require('@opentelemetry/api');

const tracer = trace.getTracer('pricing');
const port = Number(process.env.PORT || 3000);

function price(items) {
  return tracer.startActiveSpan('price items', (span) => {
    span.setAttribute('items', items);
    let total = 0;
    for (let i = 1; i <= items; i += 1) total += i * 1.5;
    span.end();
    return total;
  });
}

const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://localhost');
  if (url.pathname !== '/price') {
    response.writeHead(404, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ detail: 'not found' }));
    return;
  }
  const items = Math.min(Math.max(Number(url.searchParams.get('items')) || 1, 1), 1000);
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ items, total: price(items) }));
});

server.listen(port, '0.0.0.0', () => {
  console.log(`pricing service on port ${port}`);
});
