-- 0015: the trace context of a job's submission.
--
-- With traces on (docs/deployment.md, "Traces (OpenTelemetry)"), the submission span's
-- W3C trace context ({"traceparent": "00-...", "tracestate": "..."}) is stored with the
-- job, so the worker that claims it continues the submitter's trace. NULL when traces
-- are off: nothing is written, and nothing is read but a NULL.

ALTER TABLE vq.jobs
    ADD COLUMN trace_context jsonb
        CHECK (trace_context IS NULL OR jsonb_typeof(trace_context) = 'object');
