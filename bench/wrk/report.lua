-- wrk script that changes nothing in what wrk sends (no request() function,
-- so wrk keeps its static request); done() prints one machine-readable line
-- that bench/peers.sh reads.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d mean_us=%.1f p50_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.bytes, latency.mean,
      latency:percentile(50), latency:percentile(99), latency.max,
      e.connect + e.read + e.write + e.timeout, e.status))
end
