package main

// Blank imports keep go.mod/go.sum stable while packages are being written in
// parallel; removed once every dependency is imported for real.
import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/collectors"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/robfig/cron/v3"
	_ "github.com/rs/zerolog"
	_ "github.com/sashabaranov/go-openai"
	_ "github.com/silenceper/wechat/v2/cache"
	_ "github.com/silenceper/wechat/v2/util"
	_ "github.com/silenceper/wechat/v2/work"
	_ "github.com/silenceper/wechat/v2/work/externalcontact"
	_ "github.com/silenceper/wechat/v2/work/kf"
	_ "github.com/silenceper/wechat/v2/work/message"
	_ "github.com/silenceper/wechat/v2/work/robot"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
)
