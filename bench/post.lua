-- wrk script: POST pre-signed Stripe events, each thread from its own file of
-- "<Stripe-Signature>\t<json body>" lines, each event once (the files hold more than a run sends).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  events = {}
  if args[1] then
    for line in io.lines(args[1] .. "." .. id) do
      local tab = line:find("\t", 1, true)
      events[#events + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
    end
  end
  sent = 0
  wrapped = 0
end

function request()
  if #events == 0 then
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, "{}")
  end
  sent = sent + 1
  local i = sent
  if i > #events then
    wrapped = wrapped + 1
    i = (i - 1) % #events + 1
  end
  local e = events[i]
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json", ["Stripe-Signature"] = e[1] }, e[2])
end

function done(summary, latency, requests)
  local wrapped_total = 0
  for _, t in ipairs(threads) do
    wrapped_total = wrapped_total + (t:get("wrapped") or 0)
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %.3f, "non2xx": %d, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, "wrapped": %d}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, wrapped_total))
end
