// OpenTelemetry for the service, loaded before anything else (`node --require ./tracing.js`):
// the JS SDK with its OTLP/HTTP protobuf exporter at its defaults (a batch processor that sends
// every 5 s; the endpoint and headers from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS), or its OTLP/gRPC exporter with
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL set to `grpc`, and the HTTP
// instrumentation, which reads the caller's `traceparent`, so this service's spans join the
// caller's trace.
'use strict';

const { NodeTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-node');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const protocol =
  process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || process.env.OTEL_EXPORTER_OTLP_PROTOCOL;
const { OTLPTraceExporter } =
  protocol === 'grpc'
    ? require('@opentelemetry/exporter-trace-otlp-grpc')
    : require('@opentelemetry/exporter-trace-otlp-proto');

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({
    'service.name': process.env.OTEL_SERVICE_NAME || 'pricing',
  }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
provider.register();
registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });

function shutdown() {
  provider.shutdown().finally(() => process.exit(0)); // sends what the batch still holds
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
