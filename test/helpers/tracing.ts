import { context, type Span, type Tracer, trace } from "@opentelemetry/api";
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

/** An LLM chat call under `parent`, with its tokens, as the GenAI instrumentations write it; not ended. */
export function chatCall(tracer: Tracer, parent: Span, input: number, output: number): Span {
  return tracer.startSpan(
    "chat",
    {
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": input,
        "gen_ai.usage.output_tokens": output,
      },
    },
    trace.setSpan(context.active(), parent),
  );
}
