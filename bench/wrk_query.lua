-- wrk script: GET by type + q, limit 20, with a rotating q value and offset.
-- percent-encoded: status=="free", occupancy>50, occupancy==10..20;status=="occupied", level==2
local qs = {'status%3D%3D%22free%22', 'occupancy%3E50',
            'occupancy%3D%3D10..20%3Bstatus%3D%3D%22occupied%22', 'level%3D%3D2'}
counter = 0
request = function()
  counter = counter + 1
  local q = qs[(counter % #qs) + 1]
  return wrk.format("GET", "/ngsi-ld/v1/entities?type=ParkingSpot&limit=20&offset=" ..
    ((counter * 37) % 200) .. "&q=" .. q, nil, nil)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50=%d p95=%d p99=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
