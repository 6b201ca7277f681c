-- wrk script for `warrant-bench check --serve-only`: POST /api/v1/check for alice's
-- readonly grant on pg-prod, with the admin token from WARRANT_BENCH_TOKEN.
-- Run through wrk-check.sh, which starts the server and sets the variables.
local token = os.getenv("WARRANT_BENCH_TOKEN")
if token == nil or token == "" then
  error("set WARRANT_BENCH_TOKEN (wrk-check.sh does)")
end
wrk.method = "POST"
wrk.body = '{"identity":"alice","target":"pg-prod","role":"readonly"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
