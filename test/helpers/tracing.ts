import type { Tracer } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import {
  RunTrailSpanProcessor,
  type RunTrailSpanProcessorOptions,
} from "../../src/ingest/span-processor.js";

export interface Traced {
  processor: RunTrailSpanProcessor;
  provider: BasicTracerProvider;
  tracer: Tracer;
}

/** A real SDK provider with runtrail's processor on a store, as a pipeline sets it up. */
export function traced(options: RunTrailSpanProcessorOptions): Traced {
  const processor = new RunTrailSpanProcessor(options);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "test-service" }),
    spanProcessors: [processor],
  });
  return { processor, provider, tracer: provider.getTracer("runtrail-test") };
}
