-- Posts pre-signed, all-distinct WhatsApp webhooks (one "signature<TAB>body" per line of
-- $BENCH_DATA), so every request is a real durable insert, never a dedupe hit.
local counter = 1
local threads = {}

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  sigs, bodies = {}, {}
  for line in io.lines(os.getenv("BENCH_DATA")) do
    local tab = line:find("\t", 1, true)
    table.insert(sigs, line:sub(1, tab - 1))
    table.insert(bodies, line:sub(tab + 1))
  end
  step = tonumber(os.getenv("BENCH_THREADS") or "2")
  index = offset
end

function request()
  local i = ((index - 1) % #bodies) + 1
  index = index + step
  return wrk.format("POST", "/webhooks/wa-bench", {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = sigs[i],
  }, bodies[i])
end
