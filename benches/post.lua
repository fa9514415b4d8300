-- wrk script: POST one Kong http-log batch (the file named by BODY) per request.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
