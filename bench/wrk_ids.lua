-- wrk script: random entity ids from 1..N (N from the environment), method and body per mode.
local n = tonumber(os.getenv("BENCH_N") or "100000")
local mode = os.getenv("BENCH_MODE") or "get"
local path = os.getenv("BENCH_PATH") or "/ngsi-ld/v1/entities/"
counter = 0
request = function()
  counter = counter + 1
  local id = "urn:ngsi-ld:ParkingSpot:" .. math.random(1, n)
  if mode == "patch" then
    local body = '{"occupancy":{"type":"Property","value":' .. (counter % 100) ..
      '},"status":{"type":"Property","value":"' .. ((counter % 2 == 0) and "free" or "occupied") .. '"}}'
    return wrk.format("PATCH", path .. id .. "/attrs", {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", path .. id, nil, nil)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50=%d p95=%d p99=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
