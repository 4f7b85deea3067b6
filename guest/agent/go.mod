module boxlite.dev/agent

go 1.19
