module oet.local/pause

go 1.22
