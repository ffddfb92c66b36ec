-- SPDX-License-Identifier: Apache-2.0
-- wrk script: POST a 512-byte CloudEvent in binary mode (the HTTP ceiling for bench_http_client).
wrk.method = "POST"
wrk.body = string.rep("x", 512)
wrk.headers["Content-Type"] = "application/json"
wrk.headers["ce-specversion"] = "1.0"
wrk.headers["ce-type"] = "order.created.v1"
wrk.headers["ce-source"] = "bench"
wrk.headers["ce-id"] = "1"
