// Package telemetry is the one place that touches OpenTelemetry (BND-9):
// spans of verifications, appends, proxied requests and tool calls, off
// unless an OTLP endpoint is configured. Off is a nil *Tracer: Start then
// returns at once, allocating nothing, and no caller builds attributes.
// Attributes carry jti, wid, kind, exec_act and the result code, never
// token contents.
package telemetry

import (
	"context"
	"net/http"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys (BND-9).
const (
	JTI     = attribute.Key("agentctx.jti")
	WID     = attribute.Key("agentctx.wid")
	Kind    = attribute.Key("agentctx.kind")
	ExecAct = attribute.Key("agentctx.exec_act")
	Result  = attribute.Key("agentctx.result")
)

// Tracer starts spans; a nil *Tracer is off.
type Tracer struct{ t trace.Tracer }

// New returns a tracer of tp, nil (off) when tp is nil.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer("github.com/agentctx/agentctx")}
}

// Enabled reports whether spans are recorded: callers build attributes
// only then.
func (t *Tracer) Enabled() bool { return t != nil }

// Span is a started span; the zero Span (tracing off) does nothing.
type Span struct{ s trace.Span }

// Start starts a span named name under ctx, linked to the spans links
// name (a task's predecessors, BND-9).
func (t *Tracer) Start(ctx context.Context, name string, links []trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	for _, l := range links {
		if l.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: l}))
		}
	}
	ctx, s := t.t.Start(ctx, name, opts...)
	return ctx, Span{s: s}
}

// Set adds attributes.
func (s Span) Set(attrs ...attribute.KeyValue) {
	if s.s != nil {
		s.s.SetAttributes(attrs...)
	}
}

// End ends the span with its result: "ok", or an error code (the span's
// status is then an error).
func (s Span) End(result string) {
	if s.s == nil {
		return
	}
	s.s.SetAttributes(Result.String(result))
	if result != "ok" {
		s.s.SetStatus(codes.Error, result)
	}
	s.s.End()
}

var propagator = propagation.TraceContext{}

// Incoming returns the span context a request's traceparent names, invalid
// when it has none. It is only ever a link or a parent of spans: it never
// influences verification.
func Incoming(h http.Header) trace.SpanContext {
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), propagation.HeaderCarrier(h)))
}

// Traceparent returns the W3C traceparent of ctx's current span, "" when
// there is none (BND-10 puts it in ect_ext).
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	h := http.Header{}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
	return h.Get("traceparent")
}

// Inject writes ctx's trace context into h (the next hop's traceparent).
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// FromEnv returns a provider exporting over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (the other standard OTEL_* variables are honoured by the exporter), and
// nil (off) otherwise; shutdown flushes it.
func FromEnv(ctx context.Context, service string) (trace.TracerProvider, func(context.Context) error, error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, err
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}
