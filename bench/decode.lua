-- wrk script: POST /api/decode with a 20-d latent code (the default VAE), PNG response.
-- Usage: wrk -t2 -c32 -d10s --latency -s bench/decode.lua http://127.0.0.1:8080/api/decode
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"z":[0.1,-0.5,1.2,0.3,-1.1,0.7,0.0,0.4,-0.2,0.9,1.5,-0.8,0.6,-0.3,0.2,1.0,-1.4,0.5,-0.6,0.8]}'

local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx responses: %d; socket errors: connect %d, read %d, write %d, timeout %d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
