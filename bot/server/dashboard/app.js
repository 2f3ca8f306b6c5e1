// wecombot console. Hand-written, no build step, no dependencies.
//
// Safety rule of this file: text from the API (member names, messages,
// tags, scenario YAML) only ever reaches the page through text nodes
// (h(), svg(), textContent) — never innerHTML — so a member called
// <script>…</script> is shown, not run. The server's CSP forbids inline
// script as a second fence.
'use strict';

(() => {
  const body = document.body;
  const SANDBOX = body.dataset.sandbox === 'true';
  const TOKEN_KEY = 'wecombot.token';
  const LANG_KEY = 'wecombot.lang';
  let lang = localStorage.getItem(LANG_KEY) || body.dataset.lang || 'zh';

  // ---- i18n: Chinese first, English fallback ----
  // Words for WeCom's objects are the admin console's (客户, 客户群, 企业客户标签,
  // 联系我 / 渠道活码, 群发, 欢迎语); 会员 is only the loyalty programme (会员等级).
  const I18N = {
    zh: {
      title: '运营控制台', overview: '总览', members: '客户', campaigns: '打卡活动', coupons: '优惠券', economy: '积分', redemptionsOf: '积分兑换', red_done: '已兑换', red_awaiting_address: '待填地址', red_to_ship: '待发货', red_shipped: '已发货',
      pointsOutstanding: '未兑积分（负债）', pointsDebt: '待抵扣欠分', giftsToShip: '待发货礼品', giftsAwaiting: '待填地址',
      pointsWeekly: '每周积分发放与兑换', issuedPts: '发放', redeemedPts: '兑换', spentPts: '补卡', clawedPts: '退款扣回', expiredPts: '过期',
      issuedWeekly: '每周发放积分', redeemedWeekly: '每周兑换积分',
      topItems: '兑换排行', stockAlerts: '库存预警', item: '礼品', cost: '积分', left: '剩余', noItems: '剧本中没有积分兑换礼品。',
      noAlerts: '没有库存不足的礼品。', ship: '发货', tracking: '运单号', carrier: '快递', markShipped: '标记已发货', shipTo: '收货信息',
      noGifts: '没有待发货的礼品。', shipped: '已发货', levelsCol: '会员等级', multiplier: '积分倍数', minPoints: '所需成长值',
      scenarios: '剧本', operations: '运维', sandbox: '模拟客户', langToggle: 'English', sandboxBadge: '沙盒',
      token: '管理令牌', tokenAsk: '请输入管理令牌（WECOMBOT_ADMIN_TOKEN）。令牌只保存在本标签页。',
      tokenWrong: '令牌不正确，请重试。', save: '确定', logout: '退出', loading: '加载中…',
      loopbackOnly: '未设置 WECOMBOT_ADMIN_TOKEN：管理数据只允许本机访问。请在服务器本机打开，或设置令牌。',
      members_total: '客户总数', lost: '已流失', purchaseRate: '购买转化', eventLag: '待处理事件', outboxDepth: '待发送动作',
      funnel: 'AIPL 漏斗', funnelNote: '每层为曾到达该阶段的客户数；括号内为当前停留人数。',
      stage: '阶段', current: '当前', reached: '累计到达', conversion: '转化率', trend: '每周进入各阶段人数',
      channels: '渠道活码', channel: '渠道', membersCol: '客户数', purchaseRateCol: '购买率', noChannel: '（无渠道）',
      channelNow: '当前所在阶段（人）', channelNote: '客户数与各阶段为当前人数（每位客户只算在所在阶段）；购买率为曾购买过的客户占比，与上方漏斗的「累计到达」口径相同。',
      asOf: '数据时间', search: '搜索', q: '姓名或客户 ID', any: '全部', tag: '企业客户标签', staff: '跟进员工', level: '会员等级',
      lostQ: '流失', yes: '是', no: '否', find: '查询', more: '加载更多',
      exportMembers: '导出客户', exportOrders: '导出订单', excel: 'Excel', csv: 'CSV',
      name: '姓名', id: '客户 ID', points: '积分', checkIns: '打卡天数', orders: '订单', spend: '消费', joined: '添加时间',
      noMembers: '没有符合条件的客户。', profile: '客户档案', profileForm: '问卷资料', birthday: '生日', profileCompleted: '首次填写', profileUpdated: '最近更新', noProfile: '还没有填写资料。', tags: '企业客户标签', follows: '跟进员工', stageHistory: '阶段变化',
      state: '渠道活码', checkInDays: '打卡日历', conversation: '最近对话', timeline: '时间线', noConversation: '还没有对话。',
      couponsOf: '优惠券', pointsLedger: '积分明细', notWired: '该功能的数据尚未接入。', back: '← 返回客户列表',
      dailyCheckIns: '每日打卡人数', streaks: '最长连续打卡分布', leaderboard: '打卡排行榜', days: '天', rank: '名次',
      posterFunnel: '任务宝海报漏斗', postersMade: '生成海报', postersSent: '发出海报', inviteesAdded: '好友添加', inviteesHeld: '确认中',
      inviteesCounted: '邀请成功', inviteesVoid: '未留存', rewardsIssued: '发放奖励', noPoster: '剧本未配置任务宝海报（referral.poster）。',
      configuredCampaigns: '剧本中的活动', campaignReports: '活动报告', noCheckIns: '还没有人打卡。', noData: '暂无数据',
      pool: '券池', hook: '发放场景', issued: '已发放', redeemed: '已核销', expired: '已过期', unused: '未使用', stock: '库存',
      unlimited: '不限', configuredPools: '剧本中的券池', value: '面额', minSpend: '门槛', perMember: '每人限领',
      couponsNotWired: '优惠券统计尚未接入（券池功能未启用）。', noCoupons: '剧本中没有券池。', low: '库存不足',
      code: '券码', status: '状态', couponFree: '未发放', couponIssued: '未使用', couponUsed: '已使用', couponExpired: '已过期',
      version: '版本', loadedAt: '加载时间', source: '来源', reloads: '重载次数', failures: '失败次数', lastError: '上次重载错误',
      none: '无', file: '文件', validate: '校验', reload: '重新加载', valid: '校验通过', simulate: '模拟运行',
      simulateHint: '用剧本在临时数据库里模拟一段客户旅程（不影响线上数据）。', run: '运行', reloaded: '已重新加载',
      unchanged: '内容未变化', embeddedNote: '内置示例剧本为只读；设置 WECOMBOT_SCENARIOS 指向你的剧本目录后可热加载。',
      embedded: '内置示例剧本', scenarioContents: '剧本内容',
      lagSeconds: '最旧待处理事件', overdue: '发送积压', sent: '已发送', failedActions: '失败动作', retry: '重试',
      failedEvents: '失败事件', retryEvents: '全部重放', possiblyDelivered: '可能已送达', storeWritable: '存储可写', yes: '是', no: '否（磁盘满或只读）',
      retried: '已重新排队', noFailed: '没有失败的动作。', wecomErrors: '企业微信错误码', api: '接口', errcode: '错误码', count: '次数',
      noErrors: '没有错误。', pipeline: '处理管线', running: '运行中', stopped: '已停止', kind: '类型', lastErr: '错误', attempts: '尝试次数',
      sandboxIntro: '沙盒模式：这些按钮把事件写入真实事件日志，由真实引擎处理（欢迎语、企业客户标签、漏斗、打卡、订单），外发消息只记录不发送。',
      notSandbox: '仅在沙盒模式可用（未设置 WECOM_SECRET 时为沙盒）。', member: '客户 ID', amount: '金额（元）',
      add: '添加客户', joinGroup: '加入客户群', checkIn: '打卡', order: '下单', journey: '一键走完旅程', newMember: '换一个新客户',
      processed: '已处理', queued: '已排队', refresh: '刷新', stageNone: '未入漏斗', from_member: '客户', from_bot: '机器人',
      week: '周', time: '时间', delta: '变动', balance: '余额', reason: '原因', referral: '老带新',
      allChannels: '全部渠道', results: '位客户', ofMembers: '客户总数', problems: '个问题（文件:行号）',
      sandboxEmpty: '还没有客户。沙盒模式下可以用「模拟客户」走一遍添加客户、进客户群、打卡、下单，看看机器人怎么接待。', currentStreaks: '连续打卡天数分布',
      campaign: '活动', streak: '连续', score: '积分', makeups: '补卡', certificate: '证书', got: '已获得', recentDays: '最近打卡',
      daysUnit: '天', timesUnit: '次', cause: '原因', deletedByCustomer: '客户删除了员工', deletedByStaff: '员工删除了客户',
      invites: '有效邀请', invitesPending: '待确认', invitesVoid: '无效', rewarded: '已奖励门槛', inviteCode: '邀请码渠道',
      counts: '统计', lastProcessedSeq: '最后处理的事件序号', allHooks: '全部场景', description: '说明', couponReport: '发放与核销', rankStat: '排名',
      groupsRule: '所在客户群', segmentResult: '人数',
      convShort: '转化率', wentSilent: '本周沉默', cameBack: '本周回归', lostCol: '流失', gmvTitle: '私域 GMV 拆解（近 12 周）', traffic: '流量（新增客户）',
      convRate: '转化率（首单/新增）', frequency: '复购（订单/购买客户）', aov: '客单价', gmv: 'GMV', weeklyGMV: '每周 GMV（元）',
      moneyByChannel: '各渠道经营指标（近 12 周）', newMembers: '新增', buyers: '首单客户', repeatRate: '复购率', ltv: 'LTV', kFactor: '裂变 K 值',
      netGMV: '净 GMV', gmvNote: 'GMV = 流量 × 转化率 × 复购 × 客单价（同一时段的计数，恒等式）；复购率 = 第二次下单的客户 / 首单客户；LTV = 净 GMV / 新增客户；K 值 = 老带新邀请成功数 / 新增客户。计数自本版本运行起。', segments: '客户分群', segmentList: '剧本中的分群', segmentBuilder: '分群筛选器', segmentName: '分群', rules: '条件', liveCount: '符合条件的客户',
      tagsAny: '含任一标签', tagsAll: '含全部标签', tagsNone: '不含标签', silentDays: '沉默天数 ≥', activeDays: '活跃于最近（天）', addedWithin: '添加于最近（天）',
      segMinSpend: '累计消费 ≥（元）', minOrders: '订单数 ≥', lostOnly: '只看已流失客户', bySender: '按跟进员工（群发发送人）', sampleMembers: '示例客户',
      asYAML: '写进剧本（YAML）', reset: '清空条件', load: '载入', noStaff: '（无跟进员工）', counting: '计算中…', segmentNote: '每条条件都须满足；同一条件里的多项满足其一即可。已流失客户默认不计。',
      broadcasts: '群发', sops: 'SOP',
    },
    en: {
      title: 'Operator console', overview: 'Overview', members: 'Customers', campaigns: 'Check-ins', coupons: 'Coupons', economy: 'Points', redemptionsOf: 'Redemptions', red_done: 'redeemed', red_awaiting_address: 'awaiting address', red_to_ship: 'to ship', red_shipped: 'shipped',
      pointsOutstanding: 'Points outstanding (liability)', pointsDebt: 'Points owed', giftsToShip: 'Gifts to ship', giftsAwaiting: 'Awaiting address',
      pointsWeekly: 'Points issued and redeemed per week', issuedPts: 'Issued', redeemedPts: 'Redeemed', spentPts: 'Make-ups', clawedPts: 'Clawed back', expiredPts: 'Expired',
      issuedWeekly: 'Points issued per week', redeemedWeekly: 'Points redeemed per week',
      topItems: 'Top items', stockAlerts: 'Stock alerts', item: 'Item', cost: 'Points', left: 'Left', noItems: 'The scenario has no catalogue items.',
      noAlerts: 'No item is low on stock.', ship: 'Ship', tracking: 'Tracking no.', carrier: 'Carrier', markShipped: 'Mark shipped', shipTo: 'Ship to',
      noGifts: 'No gift waits to ship.', shipped: 'shipped', levelsCol: 'Level', multiplier: 'Points ×', minPoints: 'Earned points needed',
      scenarios: 'Scenarios', operations: 'Operations', sandbox: 'Simulate', langToggle: '中文', sandboxBadge: 'sandbox',
      token: 'Admin token', tokenAsk: 'Enter the admin token (WECOMBOT_ADMIN_TOKEN). It is kept in this tab only.',
      tokenWrong: 'Wrong token, try again.', save: 'OK', logout: 'Log out', loading: 'Loading…',
      loopbackOnly: 'WECOMBOT_ADMIN_TOKEN is not set: admin data answers only on this machine. Open the console on the server or set a token.',
      members_total: 'Customers', lost: 'Lost', purchaseRate: 'Purchase rate', eventLag: 'Pending events', outboxDepth: 'Pending actions',
      funnel: 'AIPL funnel', funnelNote: 'Each layer counts customers who ever reached the stage; in brackets, who is there now.',
      stage: 'Stage', current: 'Now', reached: 'Reached', conversion: 'Conversion', trend: 'Customers entering each stage per week',
      channels: 'Channels (contact-me codes)', channel: 'Channel', membersCol: 'Customers', purchaseRateCol: 'Purchase rate', noChannel: '(no channel)',
      channelNow: 'In each stage now', channelNote: 'Customers and stages count who is there now (each customer in one stage); purchase rate is the share who ever purchased, like the funnel\'s "reached".',
      asOf: 'As of', search: 'Search', q: 'Name or customer id', any: 'Any', tag: 'Corp tag', staff: 'Staff', level: 'Member level',
      lostQ: 'Lost', yes: 'Yes', no: 'No', find: 'Search', more: 'Load more',
      exportMembers: 'Export customers', exportOrders: 'Export orders', excel: 'Excel', csv: 'CSV',
      name: 'Name', id: 'Customer id', points: 'Points', checkIns: 'Check-in days', orders: 'Orders', spend: 'Spend', joined: 'Added',
      noMembers: 'No customers match.', profile: 'Customer profile', profileForm: 'Profile form', birthday: 'Birthday', profileCompleted: 'First filled in', profileUpdated: 'Last updated', noProfile: 'No profile form answers yet.', tags: 'Corp tags', follows: 'Staff', stageHistory: 'Stage history',
      state: 'Contact-me state', checkInDays: 'Check-in calendar', conversation: 'Recent conversation', timeline: 'Timeline', noConversation: 'No conversation yet.',
      couponsOf: 'Coupons', pointsLedger: 'Points ledger', notWired: 'This feature does not report here yet.', back: '← Back to customers',
      dailyCheckIns: 'Check-ins per day', streaks: 'Longest streaks', leaderboard: 'Leaderboard', days: 'days', rank: '#',
      posterFunnel: '任务宝 poster funnel', postersMade: 'Posters made', postersSent: 'Posters sent', inviteesAdded: 'Friends added', inviteesHeld: 'In the hold',
      inviteesCounted: 'Counted', inviteesVoid: 'Left in the hold', rewardsIssued: 'Rewards issued', noPoster: 'The scenario has no 任务宝 poster (referral.poster).',
      configuredCampaigns: 'Campaigns in the scenario', campaignReports: 'Campaign reports', noCheckIns: 'Nobody has checked in yet.', noData: 'No data yet',
      pool: 'Pool', hook: 'Issued on', issued: 'Issued', redeemed: 'Redeemed', expired: 'Expired', unused: 'Unused', stock: 'Stock',
      unlimited: 'unlimited', configuredPools: 'Pools in the scenario', value: 'Value', minSpend: 'Min spend', perMember: 'Per customer',
      couponsNotWired: 'Coupon numbers are not wired in (the coupon feature is off).', noCoupons: 'The scenario defines no coupon pools.', low: 'low stock',
      code: 'Code', status: 'Status', couponFree: 'not issued', couponIssued: 'unused', couponUsed: 'used', couponExpired: 'expired',
      version: 'Version', loadedAt: 'Loaded', source: 'Source', reloads: 'Reloads', failures: 'Failures', lastError: 'Last reload error',
      none: 'none', file: 'File', validate: 'Validate', reload: 'Reload', valid: 'Valid', simulate: 'Simulate',
      simulateHint: 'Run a scripted customer journey through the engine on a temporary store (live data is untouched).', run: 'Run', reloaded: 'Reloaded',
      unchanged: 'unchanged', embeddedNote: 'The embedded demo is read-only; point WECOMBOT_SCENARIOS at your directory to hot-reload your own.',
      embedded: 'embedded demo', scenarioContents: 'Contents',
      lagSeconds: 'Oldest pending event', overdue: 'Outbox overdue', sent: 'Sent', failedActions: 'Failed actions', retry: 'Retry',
      failedEvents: 'Failed events', retryEvents: 'Replay all', possiblyDelivered: 'Possibly delivered', storeWritable: 'Store writable', yes: 'yes', no: 'no (disk full or read-only)',
      retried: 'Queued again', noFailed: 'No failed actions.', wecomErrors: 'WeCom errors by code', api: 'API', errcode: 'errcode', count: 'Count',
      noErrors: 'No errors.', pipeline: 'Pipeline', running: 'running', stopped: 'stopped', kind: 'Kind', lastErr: 'Error', attempts: 'Attempts',
      sandboxIntro: 'Sandbox mode: these buttons append events to the real event log for the real engine (welcome message, corp tags, funnel, check-in, orders); outbound messages are recorded, not sent.',
      notSandbox: 'Only in sandbox mode (no WECOM_SECRET set).', member: 'Customer id', amount: 'Amount (yuan)',
      add: 'Add customer', joinGroup: 'Join customer group', checkIn: 'Check in', order: 'Order', journey: 'Whole journey', newMember: 'New customer',
      processed: 'processed', queued: 'queued', refresh: 'Refresh', stageNone: 'not in funnel', from_member: 'customer', from_bot: 'bot',
      week: 'Week', time: 'Time', delta: 'Change', balance: 'Balance', reason: 'Reason', referral: 'Referrals',
      allChannels: 'All channels', results: 'found', ofMembers: 'customers in all:', problems: 'problems (file:line)',
      sandboxEmpty: 'No customers yet. In the sandbox, simulate one: add, join the customer group, check in and order, and watch the bot work.', currentStreaks: 'Streak lengths',
      campaign: 'Campaign', streak: 'Streak', score: 'Score', makeups: 'Make-ups', certificate: 'Certificate', got: 'earned', recentDays: 'Recent check-ins',
      daysUnit: 'days', timesUnit: '', cause: 'Cause', deletedByCustomer: 'customer removed the staff', deletedByStaff: 'staff removed the customer',
      invites: 'Counted invites', invitesPending: 'pending', invitesVoid: 'void', rewarded: 'Rewarded at', inviteCode: 'Invite code state',
      counts: 'Counts', lastProcessedSeq: 'Last processed event', allHooks: 'all', description: 'Description', couponReport: 'Issued and redeemed', rankStat: 'Rank',
      groupsRule: 'In customer groups', segmentResult: 'Count',
      convShort: 'Conversion', wentSilent: 'Went silent this week', cameBack: 'Came back this week', lostCol: 'Lost', gmvTitle: 'GMV decomposition (12 weeks)', traffic: 'Traffic (new customers)',
      convRate: 'Conversion (first orders / new)', frequency: 'Frequency (orders / buyer)', aov: 'Avg. order value', gmv: 'GMV', weeklyGMV: 'GMV per week (yuan)',
      moneyByChannel: 'Money metrics by channel (12 weeks)', newMembers: 'New', buyers: 'First orders', repeatRate: 'Repeat rate', ltv: 'LTV', kFactor: 'K-factor',
      netGMV: 'Net GMV', gmvNote: 'GMV = traffic × conversion × frequency × order value (counts of the same period: an identity). Repeat rate: customers whose second order came / first orders; LTV: net GMV per new customer; K-factor: counted referral invites per new customer. Counting starts with this version.', segments: 'Segments', segmentList: 'Segments in the scenario', segmentBuilder: 'Segment builder', segmentName: 'Segment', rules: 'Rules', liveCount: 'Customers matching',
      tagsAny: 'Has any tag', tagsAll: 'Has every tag', tagsNone: 'Has none of', silentDays: 'Silent for ≥ days', activeDays: 'Active within days', addedWithin: 'Added within days',
      segMinSpend: 'Spend ≥ (yuan)', minOrders: 'Orders ≥', lostOnly: 'Lost customers only', bySender: 'By staff (who sends)', sampleMembers: 'Sample customers',
      asYAML: 'In the scenario (YAML)', reset: 'Clear', load: 'Load', noStaff: '(no staff)', counting: 'Counting…', segmentNote: 'Every rule must hold; within a rule any entry will do. Lost customers are left out unless asked for.',
      broadcasts: 'Broadcasts', sops: 'SOPs',
    },
  };
  // Labels for the codes the API speaks in (event types, action kinds,
  // statuses, causes, sources, hooks, pipeline and scenario counters).
  const LABELS = {
    zh: {
      stage: { aware: '认知', interest: '兴趣', purchase: '购买', loyal: '忠诚' },
      event: {
        'contact.add': '添加客户', 'contact.add_half': '客户添加了员工（待通过）', 'contact.edit': '编辑客户', 'contact.del': '员工删除客户',
        'contact.del_follow': '客户删除员工', 'contact.transfer_fail': '客户接替失败', 'group.create': '创建客户群', 'group.update': '客户群变更',
        'group.dismiss': '解散客户群', 'tag.change': '企业客户标签变更', 'app.text': '应用消息', 'app.enter': '进入应用', 'app.click': '点击应用菜单',
        'kf.notify': '微信客服通知', 'kf.text': '微信客服消息', unknown: '其他回调', 'order.paid': '订单支付', 'order.refunded': '订单退款',
        'operator.coupon_grant': '运营发券', 'profile.submit': '填写资料', 'campaign.checkin': '打卡', 'campaign.tick': '活动定时任务', 'operator.group_welcome_sync': '同步入群欢迎语',
        'operator.contact_way_create': '创建渠道活码', 'system.action_result': '动作结果', 'aibot.text': '智能机器人消息', 'ai.handoff': '转人工',
        'member.silent': '成为沉默客户', 'loss.digest': '流失日报',
        'broadcast.run': '群发开始', 'broadcast.create': '新建群发', 'sop.date': 'SOP 日期扫描',
      },
      action: {
        welcome: '发送欢迎语', mark_tag: '打企业客户标签', mass_send: '群发', group_welcome: '入群欢迎语', staff_message: '通知员工',
        kf_message: '微信客服回复', robot: '群机器人消息', contact_way: '创建渠道活码', ai_reply: 'AI 回复', kf_sync: '拉取微信客服消息',
        aibot_response: '智能机器人回复', stage: '阶段变化',
      },
      status: { pending: '待发送', sent: '已发送', failed: '发送失败', possibly_delivered: '可能已送达', delivering: '发送中', skipped: '未发送（企业微信会拒绝）', batched: '等待合并群发', planned: '已排期（到时加入发送）' },
      result: { waiting_confirm: '等待员工在企业微信确认', undelivered: '未送达（企业微信报告发送失败）', delivered: '已送达', not_confirmed: '员工未确认', over_quota: '超出本月群发次数', not_friend: '不是员工的好友',
        left_out: '员工确认时未选她', canceled: '群发前已取消', task_failed: '群发任务失败', task_unknown: '群发任务结果未知' },
      cause: {
        contact_add: '添加客户', contact_edit: '编辑客户', first_order: '首单', loyal_spend: '累计消费达标', loyal_orders: '累计订单达标',
        refund: '退款', milestone: '打卡里程碑', join_group: '加入客户群', check_in: '打卡', kf_chat: '微信客服咨询', keyword: '关键词',
      },
      source: { wecom: '企业微信', kf: '微信客服', shop: '商城', cron: '定时任务', operator: '运营操作', sim: '模拟', system: '系统' },
      field: { staff: '员工', state: '渠道活码', channel: '渠道', chat: '客户群', update: '变更', order: '订单号', amount: '金额', source: '来源',
        tag: '标签', key: '菜单', reason: '原因', pool: '券池' },
      group: { add_member: '入群', del_member: '退群', change_owner: '群主变更', change_name: '群名变更', change_notice: '群公告变更' },
      hook: { welcome: '欢迎语', operator: '运营发放', stage: (s) => `进入「${s}」阶段`, keyword: (k) => `关键词「${k}」`,
        referral: (n) => `邀请满 ${n} 人`, milestone: (c, d) => `${c} 打卡第 ${d} 天` },
      pipeline: { processed: '已处理事件', skipped: '已跳过', failed: '处理失败', sent: '已发送动作', send_retries: '发送重试',
        send_failures: '发送失败', last_processed_seq: '最后处理的事件序号' },
      summary: { channels: '渠道活码', welcome_scripts: '欢迎语', keyword_rules: '关键词规则', tag_rules: '标签规则', campaigns: '打卡活动',
        coupon_pools: '券池', levels: '会员等级' },
      sim: { add: '添加客户', join_group: '加入客户群', check_in: '打卡', kf: '微信客服消息', order: '下单' },
      reason: { checkin: '打卡', makeup: '补卡', profile: '完善资料', streak: (n) => `连续打卡 ${n} 天奖励`, milestone: (n) => `打卡第 ${n} 天奖励`,
        order: (id) => `订单 ${id}`, refund: (id) => `退款扣回 ${id}`, redeem: (item) => `兑换 ${item}`, debt: '抵扣欠分', expire: '积分过期',
        referral: (n) => `邀请满 ${n} 人` },
    },
    en: {
      stage: { aware: 'Aware', interest: 'Interest', purchase: 'Purchase', loyal: 'Loyal' },
      event: {
        'contact.add': 'Customer added', 'contact.add_half': 'Customer added staff (awaiting staff)', 'contact.edit': 'Customer edited',
        'contact.del': 'Staff removed the customer', 'contact.del_follow': 'Customer removed the staff', 'contact.transfer_fail': 'Transfer failed',
        'group.create': 'Customer group created', 'group.update': 'Customer group changed', 'group.dismiss': 'Customer group dismissed',
        'tag.change': 'Corp tag changed', 'app.text': 'App message', 'app.enter': 'Opened the app', 'app.click': 'App menu click',
        'kf.notify': 'WeChat Customer Service notice', 'kf.text': 'WeChat Customer Service message', unknown: 'Other callback',
        'order.paid': 'Order paid', 'order.refunded': 'Order refunded', 'operator.coupon_grant': 'Coupon granted by operator', 'profile.submit': 'Profile form submitted',
        'campaign.checkin': 'Check-in', 'campaign.tick': 'Campaign timer', 'operator.group_welcome_sync': 'Group welcome sync',
        'operator.contact_way_create': 'Contact-me code created', 'system.action_result': 'Action result', 'aibot.text': 'AI bot message',
        'member.silent': 'Went silent', 'loss.digest': 'Loss digest',
        'ai.handoff': 'Handed to staff', 'broadcast.run': 'Broadcast started', 'broadcast.create': 'Broadcast created', 'sop.date': 'SOP date scan',
      },
      action: {
        welcome: 'Welcome message', mark_tag: 'Corp tags', mass_send: 'Mass message', group_welcome: 'Group welcome', staff_message: 'Staff notice',
        kf_message: 'WeChat Customer Service reply', robot: 'Group robot message', contact_way: 'Contact-me code', ai_reply: 'AI reply',
        kf_sync: 'Pull WeChat Customer Service messages', aibot_response: 'AI bot reply', stage: 'Stage change',
      },
      status: { pending: 'pending', sent: 'sent', failed: 'failed', possibly_delivered: 'possibly delivered', delivering: 'sending', skipped: 'skipped (WeCom would refuse it)', batched: 'waiting for its mass-send task', planned: 'planned (queued when its time comes)' },
      result: { waiting_confirm: 'waiting for staff to confirm in WeCom', undelivered: 'not delivered (WeCom reported a send failure)', delivered: 'delivered', not_confirmed: 'not confirmed by staff', over_quota: 'over the monthly mass-send quota', not_friend: 'not a friend of the staff member',
        left_out: 'left out when staff confirmed', canceled: 'canceled before the task', task_failed: 'the mass-send task failed', task_unknown: 'the task\'s outcome is unknown' },
      cause: {
        contact_add: 'customer added', contact_edit: 'customer edited', first_order: 'first order', loyal_spend: 'spend threshold',
        loyal_orders: 'order count', refund: 'refund', milestone: 'check-in milestone', join_group: 'joined a customer group',
        check_in: 'check-in', kf_chat: 'WeChat Customer Service chat', keyword: 'keyword',
      },
      source: { wecom: 'WeCom', kf: 'WeChat Customer Service', shop: 'shop', cron: 'schedule', operator: 'operator', sim: 'simulation', system: 'system' },
      field: { staff: 'staff', state: 'contact-me state', channel: 'channel', chat: 'customer group', update: 'change', order: 'order',
        amount: 'amount', source: 'source', tag: 'tag', key: 'menu', reason: 'reason', pool: 'pool' },
      group: { add_member: 'joined', del_member: 'left', change_owner: 'owner changed', change_name: 'renamed', change_notice: 'notice changed' },
      hook: { welcome: 'welcome message', operator: 'by operator', stage: (s) => `reached ${s}`, keyword: (k) => `keyword "${k}"`,
        referral: (n) => `${n} invites`, milestone: (c, d) => `${c} day ${d}` },
      pipeline: { processed: 'events processed', skipped: 'skipped', failed: 'failed', sent: 'actions sent', send_retries: 'send retries',
        send_failures: 'send failures', last_processed_seq: 'last processed event' },
      summary: { channels: 'channels', welcome_scripts: 'welcome scripts', keyword_rules: 'keyword rules', tag_rules: 'tag rules',
        campaigns: 'campaigns', coupon_pools: 'coupon pools', levels: 'member levels' },
      sim: { add: 'add customer', join_group: 'join customer group', check_in: 'check in', kf: 'WeChat Customer Service message', order: 'order' },
      reason: { checkin: 'check-in', makeup: 'make-up check-in', profile: 'profile form', streak: (n) => `${n}-day streak bonus`, milestone: (n) => `day ${n} bonus`,
        order: (id) => `order ${id}`, refund: (id) => `refund of ${id}`, redeem: (item) => `redeemed ${item}`, debt: 'debt paid', expire: 'expired',
        referral: (n) => `${n} invites` },
    },
  };
  // label(kind, code): the word for a code, or the code itself when the console
  // does not know it yet (a new event type still shows, just raw).
  const label = (kind, code) => {
    const v = (LABELS[lang] && LABELS[lang][kind] && LABELS[lang][kind][code]) || LABELS.zh[kind][code];
    return typeof v === 'string' ? v : code;
  };
  // reasonLabel words a points ledger reason (checkin, makeup, streak:7, milestone:21).
  function reasonLabel(reason) {
    if (!reason) return '';
    const R = LABELS[lang].reason;
    const i = reason.indexOf(':');
    const kind = i < 0 ? reason : reason.slice(0, i), arg = i < 0 ? undefined : reason.slice(i + 1);
    const v = R[kind];
    if (typeof v === 'string' && arg === undefined) return v;
    if (typeof v === 'function' && arg !== undefined) return v(arg);
    return reason;
  }
  function hookLabel(hook) {
    if (!hook) return '—';
    const H = LABELS[lang].hook;
    const [kind, ...rest] = hook.split(':');
    if (rest.length === 0) return typeof H[kind] === 'string' ? H[kind] : hook;
    if (kind === 'stage') return H.stage(stageLabel(rest[0]));
    if (kind === 'keyword') return H.keyword(rest.join(':'));
    if (kind === 'referral') return H.referral(rest[0]);
    if (kind === 'milestone' && rest.length >= 2) return H.milestone(rest.slice(0, -1).join(':'), rest[rest.length - 1]);
    return hook;
  }
  const t = (k) => (I18N[lang] && k in I18N[lang] ? I18N[lang][k] : k in I18N.en ? I18N.en[k] : k);
  // nDays: "3 天" / "1 day" / "3 days".
  const nDays = (n) => (lang === 'zh' ? `${fmtInt(n)} 天` : `${fmtInt(n)} ${n === 1 ? 'day' : 'days'}`);

  // ---- DOM helpers (text only) ----
  function add(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'style') el.style.cssText = v; // CSSOM, allowed by the CSP (style attributes are not)
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    return el;
  }
  const h = (tag, attrs, ...kids) => add(setAttrs(document.createElement(tag), attrs), kids);
  const SVGNS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs, ...kids) => add(setAttrs(document.createElementNS(SVGNS, tag), attrs), kids);

  const fmtInt = (n) => (n || 0).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US');
  const pct = (r) => (r * 100).toFixed(1) + '%';
  const yuan = (fen) => '¥' + ((fen || 0) / 100).toFixed(2);
  // Times are shown in the brand's zone (the scenario's brand.zone), not the
  // browser's: an operator in Shanghai and a server log in UTC agree with
  // what members saw.
  let zone = body.dataset.zone || 'Asia/Shanghai';
  let zoneFmt = null;
  function setZone(z) { if (z && z !== zone) { zone = z; zoneFmt = null; } }
  function zoneParts(d) {
    if (!zoneFmt) {
      const opts = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
      try { zoneFmt = new Intl.DateTimeFormat('en-CA', Object.assign({ timeZone: zone }, opts)); } catch (e) { zoneFmt = new Intl.DateTimeFormat('en-CA', opts); }
    }
    const o = {};
    for (const p of zoneFmt.formatToParts(d)) o[p.type] = p.value;
    if (o.hour === '24') o.hour = '00';
    return o;
  }
  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d) || d.getUTCFullYear() < 2000) return '';
    const o = zoneParts(d);
    return `${o.year}-${o.month}-${o.day} ${o.hour}:${o.minute}`;
  }
  const dayKey = (d) => { const o = zoneParts(d); return `${o.year}-${o.month}-${o.day}`; };
  const STAGES = ['aware', 'interest', 'purchase', 'loyal'];
  const STAGE_COLORS = { aware: '#8ab4f8', interest: '#34a853', purchase: '#fbbc04', loyal: '#ea4335' };
  // stageNames are the scenario's names (the brand's words, shown in 中文);
  // English shows the AIPL names.
  const stageNames = {};
  const learnStages = (names) => { for (const [k, v] of Object.entries(names || {})) if (v) stageNames[k] = v; };
  const stageLabel = (s) => (!s ? t('stageNone') : lang === 'zh' ? stageNames[s] || LABELS.zh.stage[s] || s : LABELS.en.stage[s] || s);
  const stagePill = (s) => h('span', { class: 'stage ' + (s || '') }, stageLabel(s));
  const colon = () => (lang === 'zh' ? '：' : ': ');
  // chartWidth: charts are drawn in the width they are shown at, so their
  // text stays the size it says (a 640-wide chart squeezed to a phone has 6 px labels).
  const chartWidth = () => (window.innerWidth < 700 ? Math.max(300, Math.min(640, window.innerWidth - 56)) : 640);

  // ---- API with the admin token ----
  let tokenPrompt = null;
  function askToken(wrong) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const input = h('input', { type: 'password', autocomplete: 'current-password', id: 'token-input', required: true });
      const dlg = h('dialog', { id: 'token-dialog' },
        h('form', { method: 'dialog', onsubmit: (e) => {
          e.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          dlg.close(); dlg.remove(); tokenPrompt = null; resolve();
        } },
        h('h2', null, t('token')), h('p', null, t('tokenAsk')),
        wrong ? h('p', { class: 'error' }, t('tokenWrong')) : null,
        h('div', { class: 'row' }, input, h('button', { class: 'primary', type: 'submit' }, t('save')))));
      body.append(dlg);
      dlg.showModal();
    });
    return tokenPrompt;
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) headers.Authorization = 'Bearer ' + tok;
    const res = await fetch(path, Object.assign({}, opts, { headers }));
    if (res.status === 401) {
      await askToken(Boolean(tok));
      return api(path, opts);
    }
    const ct = res.headers.get('Content-Type') || '';
    const data = ct.includes('json') ? await res.json() : await res.text();
    if (!res.ok) {
      // JSON errors: {error, code} or application/problem+json {title, detail, code}.
      const err = new Error((data && (data.detail || data.error || data.title)) || res.statusText);
      err.status = res.status; err.body = data;
      throw err;
    }
    return data;
  }
  async function download(path, filename) {
    const tok = sessionStorage.getItem(TOKEN_KEY);
    const res = await fetch(path, { headers: tok ? { Authorization: 'Bearer ' + tok } : {} });
    if (res.status === 401) { await askToken(Boolean(tok)); return download(path, filename); }
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: filename });
    body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }

  function errorBox(err) {
    const code = err && err.body && (err.body.code || String(err.body.type || '').split('/').pop());
    if (code === 'loopback_only') return h('div', { class: 'card error' }, t('loopbackOnly'));
    const problems = err && err.body && err.body.problems;
    if (problems) return h('div', { class: 'card' }, h('p', { class: 'error' }, `✗ ${problems.length} ${t('problems')}`), problemList(problems));
    return h('div', { class: 'card error' }, String((err && err.message) || err));
  }
  const problemList = (problems) => h('ul', { class: 'problems', id: 'problems' }, problems.map((p) => h('li', null, p.text)));
  const empty = (msg) => h('div', { class: 'empty' }, msg);
  const card = (title, ...kids) => h('section', { class: 'card' }, title ? h('h2', null, title) : null, kids);
  // table: heads are text or [text, class]. A table with class "stack"
  // becomes one block per row on a phone, each cell labelled by its head.
  function table(heads, rows, attrs) {
    const tb = h('tbody', null, rows);
    if (attrs && /\bstack\b/.test(attrs.class || '')) {
      const names = heads.map((x) => (Array.isArray(x) ? x[0] : x));
      for (const tr of tb.children) [...tr.children].forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
    }
    return h('div', { class: 'scroll' }, h('table', attrs || null,
      h('thead', null, h('tr', null, heads.map((x) => (Array.isArray(x) ? h('th', { class: x[1] }, x[0]) : h('th', null, x))))), tb));
  }
  // kvTable: label / value rows, no header.
  const kvTable = (rows) => h('div', { class: 'scroll' }, h('table', { class: 'kv' }, h('tbody', null, rows.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v))))));
  const kpi = (label, value, id) => h('div', { class: 'kpi' }, h('div', { class: 'v', id }, value), h('div', { class: 'l' }, label));

  // ---- charts (SVG built from nodes) ----
  // The funnel is HTML, not SVG: its words keep the page's font size on a phone.
  function funnelChart(stages) {
    const max = Math.max(1, ...stages.map((s) => s.reached));
    return h('div', { class: 'funnel', id: 'funnel-chart', role: 'img', 'aria-label': t('funnel') }, stages.map((s, i) =>
      h('div', { class: 'f-row' },
        h('div', { class: 'f-track' }, h('div', { class: 'f-bar ' + s.stage, style: `width:${Math.max(22, (100 * s.reached) / max)}%` }, stageLabel(s.stage))),
        h('div', { class: 'f-num' }, h('b', { class: 'funnel-count', 'data-stage': s.stage }, fmtInt(s.reached)), ' ',
          h('span', { class: 'muted funnel-current', 'data-stage': s.stage }, `(${t('current')} ${fmtInt(s.current)})`),
          i > 0 ? h('div', { class: 'funnel-conv', 'data-stage': s.stage }, `↳ ${stages[i - 1].reached ? pct(s.conversion) : '—'}`) : null))));
  }

  // noData writes "no data" across an empty chart.
  function noData(g, W, H) {
    g.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', 'font-size': 14, fill: '#667085', class: 'no-data' }, t('noData')));
  }

  function lineChart(weeks) {
    const W = chartWidth(), H = 240, L = 36, R = 10, T = 10, B = 34;
    const top = Math.max(0, ...weeks.flatMap((w) => STAGES.map((s) => w.entered[s] || 0)));
    const step = Math.max(1, Math.ceil(top / 4)), max = step * 4; // whole-number gridlines
    const x = (i) => L + (weeks.length <= 1 ? 0 : (i * (W - L - R)) / (weeks.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': t('trend'), id: 'trend-chart' });
    for (let k = 0; k <= 4; k++) {
      const v = step * k;
      g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#eef0f3' }));
      g.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 12, fill: '#667085' }, String(v)));
    }
    const every = Math.max(1, Math.ceil(weeks.length / (W < 500 ? 4 : 8)));
    weeks.forEach((w, i) => {
      if ((weeks.length - 1 - i) % every) return; // always label the newest week
      const anchor = i === weeks.length - 1 ? 'end' : i === 0 ? 'start' : 'middle'; // the ends stay inside the chart
      g.append(svg('text', { x: x(i), y: H - 12, 'text-anchor': anchor, 'font-size': 12, fill: '#667085' }, w.week.slice(5)));
    });
    if (top === 0) noData(g, W, H - B);
    else {
      for (const s of STAGES) {
        const pts = weeks.map((w, i) => `${x(i)},${y(w.entered[s] || 0)}`).join(' ');
        g.append(svg('polyline', { points: pts, fill: 'none', stroke: STAGE_COLORS[s], 'stroke-width': 2.5 }));
        weeks.forEach((w, i) => g.append(svg('circle', { cx: x(i), cy: y(w.entered[s] || 0), r: 3, fill: STAGE_COLORS[s] },
          svg('title', null, `${w.week} ${stageLabel(s)}: ${w.entered[s] || 0}`))));
      }
    }
    return h('div', null, g, h('div', { class: 'chart-legend' }, STAGES.map((s) => h('span', null, h('i', { style: `background:${STAGE_COLORS[s]}` }), stageLabel(s)))));
  }

  function barChart(items, id, color) {
    const W = chartWidth(), H = 200, L = 30, B = 30, T = 10;
    const top = Math.max(0, ...items.map((d) => d.value));
    const step = Math.max(1, Math.ceil(top / 2)), max = step * 2;
    const bw = (W - L - 6) / Math.max(1, items.length);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', id });
    for (let k = 0; k <= 2; k++) {
      const v = step * k, yy = T + (H - T - B) * (1 - v / max);
      g.append(svg('line', { x1: L, x2: W, y1: yy, y2: yy, stroke: '#eef0f3' }));
      g.append(svg('text', { x: L - 5, y: yy + 4, 'text-anchor': 'end', 'font-size': 12, fill: '#667085' }, String(v)));
    }
    const every = Math.max(1, Math.ceil(items.length / (W < 500 ? 5 : 10)));
    items.forEach((d, i) => {
      const bh = (H - T - B) * (d.value / max);
      const w = Math.min(48, Math.max(2, bw - 4));
      if (d.value) g.append(svg('rect', { x: L + i * bw + (bw - w) / 2, y: H - B - bh, width: w, height: bh, rx: 2, fill: color || '#07c160' },
        svg('title', null, `${d.label}: ${d.value}`)));
      if ((items.length - 1 - i) % every === 0) {
        // the last label ends at the chart's edge rather than past it
        const last = i === items.length - 1 && items.length > 3;
        g.append(svg('text', { x: last ? W - 1 : L + i * bw + bw / 2, y: H - 10, 'text-anchor': last ? 'end' : 'middle', 'font-size': 12, fill: '#667085' }, d.short || d.label));
      }
    });
    if (top === 0) noData(g, W, H - B);
    return g;
  }

  // ---- views ----
  async function viewOverview(main, params) {
    const channel = params.get('channel') || '';
    const [f, st, byChannel, money] = await Promise.all([api('/api/v1/funnel?weeks=12'), api('/api/v1/status'),
      channel ? api('/api/v1/funnel?channel=' + encodeURIComponent(channel)) : null,
      api('/api/v1/metrics?weeks=12' + (channel ? '&channel=' + encodeURIComponent(channel) : '')).catch(() => null)]);
    const shown = byChannel || f;
    const picker = h('select', { id: 'funnel-channel', 'aria-label': t('channel'),
      onchange: () => { location.hash = '#overview' + (picker.value ? '?channel=' + encodeURIComponent(picker.value) : ''); } },
    h('option', { value: '' }, t('allChannels')),
    f.channels.filter((c) => c.channel).map((c) => h('option', { value: c.channel, selected: c.channel === channel }, c.channel)));
    for (const s of f.stages) stageNames[s.stage] = s.name;
    setZone(f.zone);
    const purchase = f.stages.find((s) => s.stage === 'purchase');
    if (SANDBOX && f.members === 0) {
      main.append(h('div', { class: 'card', id: 'sandbox-hint' }, h('p', null, t('sandboxEmpty'), ' ', h('a', { href: '#sandbox' }, t('sandbox') + ' →'))));
    }
    main.append(
      h('div', { class: 'kpis' },
        kpi(t('members_total'), fmtInt(f.members), 'kpi-members'),
        kpi(t('purchaseRate'), f.members ? pct(purchase.reached / f.members) : '—', 'kpi-purchase'),
        kpi(t('lost'), fmtInt(f.lost), 'kpi-lost'),
        kpi(t('eventLag'), fmtInt(st.events && st.events.pending), 'kpi-lag'),
        kpi(t('outboxDepth'), fmtInt(st.outbox && st.outbox.pending), 'kpi-outbox'),
        money ? kpi(t('wentSilent'), fmtInt(money.this_week.went_silent), 'kpi-silent') : null,
        money ? kpi(t('cameBack'), fmtInt(money.this_week.came_back), 'kpi-back') : null),
      h('div', { class: 'grid two' },
        card(t('funnel'), h('div', { class: 'row' }, picker, channel ? h('span', { class: 'muted' }, `${fmtInt(shown.members)} ${t('membersCol')}`) : null),
          funnelChart(shown.stages), h('p', { class: 'muted' }, t('funnelNote')),
          table([t('stage'), [t('reached'), 'num'], [t('current'), 'num'], [t('conversion'), 'num']],
            shown.stages.map((s, i) => h('tr', { 'data-stage': s.stage }, h('td', null, stagePill(s.stage)),
              h('td', { class: 'num funnel-reached', 'data-stage': s.stage }, fmtInt(s.reached)),
              h('td', { class: 'num' }, fmtInt(s.current)), h('td', { class: 'num' }, i && shown.stages[i - 1].reached ? pct(s.conversion) : '—'))),
            { id: 'funnel-table' })),
        card(t('trend'), lineChart(f.weeks))),
      card(t('channels'), f.channels.length ? channelTable(f.channels) : empty(t('noMembers'))),
      money ? gmvSection(money) : null,
      h('p', { class: 'muted', id: 'as-of', 'data-at': f.computed_at }, `${t('asOf')} ${when(f.computed_at)}${lang === 'zh' ? `（${zone}）` : ` (${zone})`}`));
  }

  // gmvSection: the seed's 私域GMV = 流量 × 转化率 × 复购 × 客单价 over the
  // window, weekly GMV, and the money metrics per channel.
  function gmvSection(m) {
    const d = m.decomposition;
    const factor = (label, value, id) => h('div', { class: 'factor', id }, h('div', { class: 'v' }, value), h('div', { class: 'l' }, label));
    const op = (s) => h('div', { class: 'op', 'aria-hidden': 'true' }, s);
    const num2 = (x) => (x || 0).toFixed(2);
    const rows = m.channels.map((c) => h('tr', null, h('td', null, c.channel || t('noChannel')),
      h('td', { class: 'num' }, fmtInt(c.added)), h('td', { class: 'num' }, pct(c.conversion)), h('td', { class: 'num hide-sm' }, fmtInt(c.orders)),
      h('td', { class: 'num' }, yuan(c.gmv_fen)), h('td', { class: 'num hide-sm' }, yuan(c.aov_fen)), h('td', { class: 'num hide-sm' }, pct(c.repeat_rate)),
      h('td', { class: 'num hide-sm' }, yuan(c.ltv_fen)), h('td', { class: 'num hide-sm' }, num2(c.k_factor)), h('td', { class: 'num hide-sm' }, fmtInt(c.lost))));
    return h('div', null, h('div', { class: 'grid two' },
      card(t('gmvTitle'), h('div', { class: 'decomp', id: 'gmv-decomposition' },
        factor(t('traffic'), fmtInt(d.traffic), 'gmv-traffic'), op('×'), factor(t('convRate'), pct(d.conversion), 'gmv-conversion'), op('×'),
        factor(t('frequency'), num2(d.frequency), 'gmv-frequency'), op('×'), factor(t('aov'), yuan(d.aov_fen), 'gmv-aov'), op('='),
        factor(t('gmv'), yuan(d.gmv_fen), 'gmv-total')), h('p', { class: 'muted note' }, t('gmvNote'))),
      card(t('weeklyGMV'), barChart(m.weeks.map((w) => ({ label: w.week, short: w.week.slice(5), value: Math.round((w.gmv_fen || 0) / 100) })), 'gmv-chart'))),
      card(t('moneyByChannel'), m.channels.length ? table([t('channel'), [t('newMembers'), 'num'], [t('convShort'), 'num'], [t('orders'), 'num hide-sm'], [t('gmv'), 'num'],
        [t('aov'), 'num hide-sm'], [t('repeatRate'), 'num hide-sm'], [t('ltv'), 'num hide-sm'], [t('kFactor'), 'num hide-sm'], [t('lostCol'), 'num hide-sm']], rows, { id: 'money-table' }) : empty(t('noData'))));
  }

  // channelTable: customers per channel and where they are now; the
  // header says these are current counts (the funnel above counts reached).
  function channelTable(channels) {
    const th = (text, cls, span) => h('th', Object.assign({ class: cls || null }, span || {}), text);
    return h('div', { class: 'scroll' }, h('table', { id: 'channel-table' },
      h('thead', null,
        h('tr', null, th(t('channel'), null, { rowspan: 2 }), th(t('membersCol'), 'num', { rowspan: 2 }),
          th(t('channelNow'), 'num hide-sm group', { colspan: STAGES.length }), th(t('purchaseRateCol'), 'num', { rowspan: 2 }), th(t('lostCol'), 'num', { rowspan: 2 })),
        h('tr', null, STAGES.map((s) => th(stageLabel(s), 'num hide-sm')))),
      h('tbody', null, channels.map((c) => h('tr', null,
        h('td', null, h('a', { href: '#members?channel=' + encodeURIComponent(c.channel || '') }, c.channel || t('noChannel')),
          c.state ? h('span', { class: 'muted' }, ' · ', c.state) : null),
        h('td', { class: 'num' }, fmtInt(c.members)),
        c.stages.map((s) => h('td', { class: 'num hide-sm' }, fmtInt(s.current))),
        h('td', { class: 'num' }, pct(c.purchase_rate)),
        h('td', { class: 'num channel-lost' }, fmtInt(c.lost || 0), c.lost ? h('span', { class: 'muted hide-sm' }, ' · ', pct(c.lost_rate)) : null))))),
    h('p', { class: 'muted note', id: 'channel-note' }, t('channelNote')));
  }

  function memberTable(rows) {
    return rows.map((m) => h('tr', { class: 'member-row' },
      h('td', null, h('a', { href: '#member/' + encodeURIComponent(m.external_user_id), class: 'member-name' }, m.name || m.external_user_id),
        h('div', { class: 'muted hide-sm' }, m.external_user_id)),
      h('td', null, stagePill(m.stage), m.lost ? h('span', { class: 'badge bad' }, ' ', t('lost')) : null),
      h('td', { class: 'hide-sm' }, m.channel || m.state || ''),
      h('td', { class: 'hide-sm' }, m.staff || ''),
      h('td', { class: 'hide-sm' }, m.level || ''),
      h('td', { class: 'num' }, fmtInt(m.points)),
      h('td', { class: 'num' }, fmtInt(m.check_ins)),
      h('td', { class: 'num hide-sm' }, fmtInt(m.orders), ' · ', yuan(m.spend_fen)),
      h('td', { class: 'hide-sm' }, when(m.created_at))));
  }

  async function viewMembers(main, params) {
    const [f] = await Promise.all([api('/api/v1/funnel')]);
    for (const s of f.stages) stageNames[s.stage] = s.name;
    const field = (name, label, control) => h('label', null, label, control);
    const opt = (v, label, cur) => h('option', { value: v, selected: v === cur }, label);
    const keys = (o) => Object.keys(o || {}).sort();
    const form = h('form', { class: 'filters', id: 'member-search' },
      field('q', t('q'), h('input', { name: 'q', type: 'search', value: params.get('q') || '', id: 'member-q' })),
      field('stage', t('stage'), h('select', { name: 'stage' }, opt('', t('any')), STAGES.map((s) => opt(s, stageLabel(s), params.get('stage'))))),
      field('channel', t('channel'), h('select', { name: 'channel' }, opt('', t('any')), f.channels.filter((c) => c.channel).map((c) => opt(c.channel, c.channel, params.get('channel'))))),
      field('tag', t('tag'), h('select', { name: 'tag' }, opt('', t('any')), keys(f.tags).map((x) => opt(x, x, params.get('tag'))))),
      field('staff', t('staff'), h('select', { name: 'staff' }, opt('', t('any')), keys(f.staff).map((x) => opt(x, x, params.get('staff'))))),
      field('level', t('level'), h('select', { name: 'level' }, opt('', t('any')), keys(f.levels).map((x) => opt(x, x, params.get('level'))))),
      field('lost', t('lostQ'), h('select', { name: 'lost' }, opt('', t('any')), opt('true', t('yes'), params.get('lost')), opt('false', t('no'), params.get('lost')))),
      h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'member-search-go' }, t('find')),
        exportButtons('members', t('exportMembers'), filterQuery), exportButtons('orders', t('exportOrders'), () => '')));
    // Exports in the page's language, .xlsx for Excel / WPS beside CSV.
    function exportButtons(what, text, query) {
      return h('span', { class: 'row export' }, h('span', { class: 'muted' }, text),
        ['xlsx', 'csv'].map((ext) => h('button', { type: 'button', id: `export-${what}-${ext}`, onclick: () => {
          const q = new URLSearchParams(query()); q.set('lang', lang);
          return download(`/api/v1/export/${what}.${ext}?${q}`, `${what}.${ext}`);
        } }, t(ext === 'xlsx' ? 'excel' : 'csv'))));
    }
    function filterQuery() {
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
      return q.toString();
    }
    form.addEventListener('submit', (e) => { e.preventDefault(); location.hash = '#members?' + filterQuery(); });
    const tbody = h('tbody', { id: 'member-results' });
    const status = h('p', { class: 'muted', id: 'member-count' });
    const moreBtn = h('button', { type: 'button', hidden: true }, t('more'));
    main.append(h('h1', null, t('members')), card(null, form,
      h('div', { class: 'scroll' }, h('table', null, h('thead', null, h('tr', null, h('th', null, t('name')), h('th', null, t('stage')),
        h('th', { class: 'hide-sm' }, t('channel')), h('th', { class: 'hide-sm' }, t('staff')), h('th', { class: 'hide-sm' }, t('level')),
        h('th', { class: 'num' }, t('points')), h('th', { class: 'num' }, t('checkIns')), h('th', { class: 'num hide-sm' }, t('orders')),
        h('th', { class: 'hide-sm' }, t('joined')))), tbody)), status, moreBtn));
    let shown = 0;
    // A page scans a bounded slice of the members; a rare filter may come
    // back short with a cursor, so keep going (a few pages) to fill the page.
    async function load(cursor) {
      const q = new URLSearchParams();
      for (const k of ['q', 'stage', 'channel', 'tag', 'staff', 'level', 'lost']) if (params.get(k)) q.set(k, params.get(k));
      q.set('limit', '50');
      let got = 0, r;
      for (let pages = 0; pages < 20; pages++) {
        if (cursor) q.set('cursor', cursor);
        r = await api('/api/v1/members?' + q);
        add(tbody, memberTable(r.members));
        got += r.members.length;
        cursor = r.next_cursor;
        if (got >= 50 || !cursor) break;
      }
      shown += got;
      status.textContent = (shown ? `${fmtInt(shown)} ${t('results')}` : t('noMembers')) + ` · ${t('ofMembers')} ${fmtInt(r.total)}`;
      moreBtn.hidden = !cursor;
      moreBtn.onclick = () => load(cursor);
    }
    await load('');
  }

  function memberProfile(d) {
    const m = d.member, s = d.summary, sections = d.sections || {};
    learnStages(d.stage_names);
    setZone(d.zone);
    const info = [[t('id'), m.external_user_id], [t('stage'), stagePill(m.stage)], [t('channel'), s.channel || '—'],
      [t('state'), s.state || '—'], [t('staff'), s.staff || '—'], [t('level'), m.level || '—'], [t('points'), fmtInt(m.points)],
      [t('checkIns'), fmtInt(m.check_ins)], [t('orders'), `${fmtInt(m.orders)} · ${yuan(m.spend_fen)}`], [t('joined'), when(m.created_at)]];
    const dayset = new Set(d.check_in_days);
    const lastDays = [];
    for (let i = 41; i >= 0; i--) {
      const key = dayKey(new Date(Date.now() - i * 86400000));
      lastDays.push(h('span', { class: dayset.has(key) ? 'on' : '', title: key }));
    }
    const coupons = sections.coupons;
    const ledger = sections.points_ledger;
    const known = ['coupons', 'points_ledger', 'checkin', 'referral', 'redemptions'];
    const reds = sections.redemptions;
    return h('div', { id: 'member-profile' },
      h('h1', null, h('span', { id: 'profile-name' }, m.name || m.external_user_id), ' ', m.lost ? h('span', { class: 'badge bad' }, t('lost')) : null),
      h('div', { class: 'grid side' },
        h('div', { class: 'grid' },
          card(t('profile'), kvTable(info)),
          card(t('conversation'), d.conversation.length ? h('div', { class: 'chat', id: 'conversation' }, d.conversation.map((c) =>
            h('div', { class: 'bubble ' + c.from }, c.text, h('span', { class: 'when' }, t('from_' + c.from), ' · ', when(c.at), c.result ? ' · ' + label('result', c.result) : c.status ? ' · ' + label('status', c.status) : ''))))
            : empty(t('noConversation'))),
          card(t('timeline'), h('ul', { class: 'timeline', id: 'timeline' }, d.timeline.map(timelineEntry)))),
        h('div', { class: 'grid' },
          d.profile !== undefined ? card(t('profileForm'), profileFormSection(d.profile)) : null,
          card(t('tags'), m.tags && m.tags.length ? h('div', { class: 'chips' }, m.tags.map((x) => h('span', { class: 'chip' }, x))) : empty(t('none'))),
          card(t('stageHistory'), (m.stage_history || []).length ? h('ul', { class: 'timeline', id: 'stage-history' }, m.stage_history.map((c) => h('li', { class: 'stage' },
            h('div', { class: 'when' }, when(c.at), ' · ', label('cause', c.cause)), h('div', null, stageLabel(c.from), ' → ', stageLabel(c.to))))) : empty(t('none'))),
          card(t('checkInDays'), h('div', { class: 'days' }, lastDays), sections.checkin !== undefined ? checkinSection(sections.checkin) : null),
          card(t('follows'), table([t('staff'), t('state'), t('joined')], (m.follows || []).map((fl) => h('tr', null,
            h('td', null, fl.staff_id, fl.deleted_at ? h('span', { class: 'badge bad' }, fl.deleted_by === 'staff' ? t('deletedByStaff') : fl.deleted_by === 'customer' ? t('deletedByCustomer') : t('lost')) : null),
            h('td', null, fl.state || ''), h('td', null, when(fl.added_at)))))),
          card(t('couponsOf'), coupons === undefined ? empty(t('notWired')) : coupons && coupons.length ? table([t('pool'), t('code'), t('hook'), t('status')],
            coupons.map((c) => h('tr', null, h('td', null, c.pool), h('td', { class: 'code' }, c.code), h('td', null, hookLabel(c.hook)), h('td', { class: 'nowrap' }, couponStatus(c)))),
            { id: 'member-coupons' })
            : empty(t('none'))),
          card(t('pointsLedger'), ledger === undefined ? empty(t('notWired')) : ledger && ledger.length ? table([t('time'), [t('delta'), 'num'], [t('balance'), 'num'], t('reason')],
            ledger.map((p) => h('tr', null, h('td', { class: 'nowrap' }, when(p.at)), h('td', { class: 'num' }, (p.delta > 0 ? '+' : '') + String(p.delta ?? '')),
              h('td', { class: 'num' }, String(p.balance ?? '')), h('td', { class: 'reason' }, reasonLabel(p.reason), p.campaign ? ' · ' + p.campaign : ''))))
            : empty(t('none'))),
          sections.referral !== undefined ? card(t('referral'), referralSection(sections.referral)) : null,
          reds !== undefined ? card(t('redemptionsOf'), reds.length ? table([t('time'), t('item'), [t('cost'), 'num'], t('status')],
            reds.map((r) => h('tr', null, h('td', { class: 'nowrap' }, when(r.at)), h('td', null, r.item, r.coupon ? h('div', { class: 'muted' }, r.coupon) : null),
              h('td', { class: 'num' }, fmtInt(r.cost)), h('td', null, t('red_' + r.status), r.tracking ? h('div', { class: 'muted' }, `${r.carrier || ''} ${r.tracking}`) : null))),
            { id: 'member-redemptions' }) : empty(t('none'))) : null,
          Object.entries(sections).filter(([k]) => !known.includes(k)).map(([k, v]) => card(t(k), genericSection(v))))));
  }

  function couponStatus(c) {
    if (c.status === 'used') return t('couponUsed');
    if (c.status === 'free') return t('couponFree');
    if (c.status === 'issued') return c.expires_at && new Date(c.expires_at) <= new Date() ? t('couponExpired') : t('couponIssued');
    return c.status || '';
  }

  // timelineEntry words one timeline item: what happened (event type,
  // action kind, stage change) and its details, never raw codes.
  function timelineEntry(it) {
    const what = it.kind === 'event' ? label('event', it.type) : label('action', it.type);
    let detail;
    if (it.kind === 'stage') {
      detail = [stageLabel(it.from), ' → ', stageLabel(it.to), it.cause ? h('span', { class: 'muted' }, ` · ${t('cause')}${colon()}${label('cause', it.cause)}`) : null];
    } else if (it.kind === 'action' && (it.tags_added || it.tags_removed)) {
      detail = h('div', { class: 'chips' }, (it.tags_added || []).map((x) => h('span', { class: 'chip add' }, '+ ', x)),
        (it.tags_removed || []).map((x) => h('span', { class: 'chip remove' }, '− ', x)));
    } else if (it.kind === 'action') {
      detail = it.text === it.type ? '' : it.text;
    } else {
      detail = it.fields ? eventDetail(it.fields) : '';
    }
    return h('li', { class: it.kind, 'data-type': it.type },
      h('div', { class: 'when' }, when(it.at), ' · ', h('b', { class: 'what' }, what), it.result ? ' · ' + label('result', it.result) : it.status ? ' · ' + label('status', it.status) : ''),
      detail ? h('div', { class: 'detail' }, detail) : null);
  }
  function eventDetail(f) {
    const L = (k) => label('field', k) + colon();
    const bits = [];
    if (f.content) bits.push(lang === 'zh' ? `“${f.content}”` : `"${f.content}"`);
    if (f.update) bits.push(label('group', f.update));
    if (f.channel) bits.push(L('channel') + f.channel + (f.state ? ` (${f.state})` : ''));
    else if (f.state) bits.push(L('state') + f.state);
    if (f.staff) bits.push(L('staff') + f.staff);
    if (f.chat) bits.push(L('chat') + f.chat);
    if (f.key) bits.push(L('key') + f.key);
    if (f.order) bits.push(L('order') + f.order);
    if (f.amount) bits.push(L('amount') + '¥' + f.amount);
    if (f.source) bits.push(L('source') + label('source', f.source));
    return bits.join(' · ');
  }

  // checkinSection: the member's progress in each campaign.
  function checkinSection(rows) {
    if (!rows || !rows.length) return h('p', { class: 'muted', id: 'member-checkin' }, t('noCheckIns'));
    const stat = (k, v) => h('div', null, h('dt', null, k), h('dd', null, v));
    return h('div', { id: 'member-checkin' }, rows.map((r) => h('div', { class: 'ci-camp' }, h('h3', null, r.campaign),
      h('dl', { class: 'stats' }, stat(t('checkIns'), nDays(r.days.length)), stat(t('streak'), nDays(r.streak)),
        stat(t('score'), fmtInt(r.score)), stat(t('rankStat'), r.rank ? fmtInt(r.rank) : '—'), stat(t('makeups'), `${fmtInt(r.makeups)} ${t('timesUnit')}`.trim()),
        stat(t('certificate'), r.certificate ? t('got') : '—')),
      r.days.length ? h('div', { class: 'recent' }, h('span', { class: 'muted' }, t('recentDays'), colon()),
        h('span', { class: 'chips' }, r.days.slice(-7).reverse().map((x) => h('span', { class: 'chip' }, x)))) : null)));
  }

  // profileFormSection: her answers to the profile form (问卷), as the
  // form's labels (the server resolved choice keys to their labels).
  function profileFormSection(p) {
    if (!p || !p.answers) return h('p', { class: 'muted', id: 'member-profile-form' }, t('noProfile'));
    const rows = [[t('birthday'), p.birthday || '—'], ...p.answers.map((a) => [a.label, a.answer || '—']),
      [t('profileCompleted'), when(p.completed_at)], [t('profileUpdated'), when(p.updated_at)]];
    return h('div', { id: 'member-profile-form' }, kvTable(rows));
  }

  function referralSection(r) {
    if (!r) return empty(t('none'));
    const rows = [[t('inviteCode'), r.state || '—'], [t('invites'), fmtInt(r.counted)], [t('invitesPending'), fmtInt(r.pending)],
      [t('invitesVoid'), fmtInt(r.void)], [t('rewarded'), (r.rewarded || []).length ? r.rewarded.join(lang === 'zh' ? '、' : ', ') : '—']];
    return kvTable(rows);
  }

  // genericSection shows a feature's section it has no special view for:
  // a list of records as a table, a record as key/value rows, as text.
  function genericSection(v) {
    const text = (x) => (x === null || x === undefined ? '' : typeof x === 'object' ? JSON.stringify(x) : String(x));
    if (Array.isArray(v)) {
      if (!v.length) return empty(t('none'));
      if (typeof v[0] !== 'object' || v[0] === null) return h('div', { class: 'chips' }, v.map((x) => h('span', { class: 'chip' }, text(x))));
      const keys = [...new Set(v.flatMap((r) => Object.keys(r || {})))].slice(0, 6);
      return table(keys, v.map((r) => h('tr', null, keys.map((k) => h('td', null, /_at$/.test(k) ? when(r[k]) : text(r[k]))))));
    }
    if (v && typeof v === 'object') {
      const rows = Object.entries(v);
      return rows.length ? kvTable(rows.map(([k, x]) => [k, /_at$/.test(k) ? when(x) : text(x)])) : empty(t('none'));
    }
    return v === null || v === undefined ? empty(t('none')) : h('p', null, text(v));
  }

  async function viewMember(main, params, id) {
    const d = await api('/api/v1/members/' + encodeURIComponent(id));
    main.append(h('p', null, h('a', { href: '#members' }, t('back'))), memberProfile(d));
  }

  async function viewCampaigns(main) {
    const [c, posters] = await Promise.all([api('/api/v1/campaigns?days=30'), api('/api/v1/posters')]);
    const ci = c.check_ins;
    main.append(h('h1', null, t('campaigns')),
      h('div', { class: 'grid two' },
        card(t('dailyCheckIns'), barChart(ci.days.map((d) => ({ label: d.day, short: d.day.slice(5), value: d.members })), 'checkin-chart')),
        card(t('streaks'), ci.longest_streaks.length ? barChart(ci.longest_streaks.map((s) => ({ label: `${s.days} ${t('days')}`, short: String(s.days), value: s.members })), 'streak-chart', '#fbbc04') : empty(t('noCheckIns')))),
      h('div', { class: 'grid two' },
        card(t('leaderboard'), ci.leaderboard.length ? table([t('rank'), t('name'), [t('checkIns'), 'num'], [t('points'), 'num']],
          ci.leaderboard.map((l, i) => h('tr', null, h('td', null, String(i + 1)),
            h('td', null, h('a', { href: '#member/' + encodeURIComponent(l.external_user_id), class: 'member-name' }, l.name || l.external_user_id)),
            h('td', { class: 'num' }, fmtInt(l.check_ins)), h('td', { class: 'num' }, fmtInt(l.points))))) : empty(t('noCheckIns'))),
        card(t('configuredCampaigns'), (c.configured || []).length ? h('div', { class: 'chips' }, c.configured.map((n) => h('span', { class: 'chip' }, n))) : empty(t('none')),
          h('h2', { style: 'margin-top:1rem' }, t('campaignReports')),
          !c.available ? empty(t('notWired')) : c.campaigns.length ? c.campaigns.map((r) => h('div', null, h('h3', null, r.name),
            barChart(r.days.map((d) => ({ label: d.day, short: d.day.slice(5), value: d.members })), null),
            r.streaks && r.streaks.length ? h('div', null, h('p', { class: 'muted' }, t('currentStreaks')),
              barChart(r.streaks.map((x) => ({ label: `${x.days} ${t('days')}`, short: String(x.days), value: x.members })), null, '#fbbc04')) : null,
            r.leaders && r.leaders.length ? table([t('name'), [t('points'), 'num']], r.leaders.map((l) => h('tr', null, h('td', null, l.name || l.external_user_id), h('td', { class: 'num' }, String(l.score))))) : null))
            : empty(t('none')))),
      posterCard(posters));
  }

  // posterCard: the 任务宝 campaign's funnel, posters made → rewards issued.
  function posterCard(p) {
    const f = p.funnel || {};
    const steps = [['postersMade', f.posters], ['inviteesAdded', f.invitees], ['inviteesHeld', f.held], ['inviteesCounted', f.counted], ['rewardsIssued', f.rewards]];
    return card(t('posterFunnel'), !p.enabled && !f.posters ? empty(t('noPoster')) : h('div', { id: 'poster-funnel' },
      barChart(steps.map(([k, v]) => ({ label: t(k), short: t(k), value: v || 0 })), 'poster-chart'),
      kvTable([[t('postersSent'), fmtInt(f.posters_sent || 0)], [t('inviteesVoid'), fmtInt(f.void || 0)]])));
  }

  async function viewCoupons(main) {
    const c = await api('/api/v1/coupons');
    main.append(h('h1', null, t('coupons')),
      card(t('couponReport'), !c.available ? empty(t('couponsNotWired')) : c.pools.length ? table([t('pool'), t('hook'), [t('issued'), 'num'], [t('redeemed'), 'num'],
        [t('expired'), 'num'], [t('unused'), 'num'], [t('conversion'), 'num'], [t('stock'), 'num']],
      c.pools.map((p) => h('tr', { class: p.hook ? 'hook' : 'pool' },
        h('td', { class: p.hook ? 'muted pool-name' : 'pool-name' }, p.pool), h('td', null, p.hook ? hookLabel(p.hook) : t('allHooks')),
        h('td', { class: 'num' }, fmtInt(p.issued)), h('td', { class: 'num' }, fmtInt(p.redeemed)), h('td', { class: 'num' }, fmtInt(p.expired)),
        h('td', { class: 'num' }, fmtInt(p.unused)), h('td', { class: 'num' }, p.issued ? pct(p.conversion) : '—'),
        h('td', { class: 'num' }, p.stock < 0 ? t('unlimited') : fmtInt(p.stock), p.low ? h('span', { class: 'badge bad' }, ' ', t('low')) : null))), { id: 'coupon-table', class: 'stack' })
        : empty(t('noCoupons'))),
      card(t('configuredPools'), c.configured.length ? table([t('pool'), [t('value'), 'num'], [t('minSpend'), 'num'], [t('perMember'), 'num'], t('description')],
        c.configured.map((p) => h('tr', null, h('td', { class: 'pool-name' }, p.name), h('td', { class: 'num' }, yuan(p.value_fen)), h('td', { class: 'num' }, p.min_spend_fen ? yuan(p.min_spend_fen) : '—'),
          h('td', { class: 'num' }, p.per_member ? String(p.per_member) : '—'), h('td', { class: 'muted' }, p.description || ''))), { id: 'pool-table', class: 'stack' }) : empty(t('noCoupons'))));
  }

  async function viewEconomy(main) {
    const [e, toShip] = await Promise.all([api('/api/v1/economy'), api('/api/v1/redemptions?status=to_ship&limit=100')]);
    const weeks = e.weeks.slice(-12);
    const stockCell = (it) => h('td', { class: 'num' }, it.left < 0 ? t('unlimited') : fmtInt(it.left), it.alert ? h('span', { class: 'badge bad' }, ' ', t('low')) : null);
    const itemRows = (items) => items.map((it) => h('tr', null, h('td', { class: 'pool-name' }, it.item), h('td', { class: 'num' }, fmtInt(it.cost)),
      h('td', { class: 'num' }, fmtInt(it.redeemed)), stockCell(it)));
    const itemHeads = [t('item'), [t('cost'), 'num'], [t('redeemedPts'), 'num'], [t('left'), 'num']];
    const shipRow = (r) => {
      const carrier = h('input', { placeholder: t('carrier'), size: 6, 'aria-label': t('carrier') });
      const tracking = h('input', { placeholder: t('tracking'), size: 12, 'aria-label': t('tracking') });
      const cell = h('td', null);
      const btn = h('button', { type: 'button', class: 'primary', onclick: async () => {
        btn.disabled = true;
        try {
          await api(`/api/v1/redemptions/${encodeURIComponent(r.id)}/shipped`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ carrier: carrier.value, tracking: tracking.value, request_id: r.id + '|' + tracking.value }) });
          cell.replaceChildren(h('span', { class: 'badge' }, t('shipped')));
        } catch (err) { cell.append(h('p', { class: 'error' }, String(err.message))); btn.disabled = false; }
      } }, t('markShipped'));
      cell.append(h('div', { class: 'row' }, carrier, tracking, btn));
      return h('tr', null, h('td', { class: 'code' }, r.id), h('td', null, r.item), h('td', null, `${r.ship_name} ${r.ship_phone}`, h('br'), r.ship_address), cell);
    };
    main.append(h('h1', null, t('economy')),
      h('div', { class: 'kpis' },
        kpi(t('pointsOutstanding'), fmtInt(e.totals.outstanding), 'kpi-points-outstanding'),
        kpi(t('pointsDebt'), fmtInt(e.totals.debt), 'kpi-points-debt'),
        kpi(t('giftsToShip'), fmtInt(e.gifts_to_ship), 'kpi-gifts-to-ship'),
        kpi(t('giftsAwaiting'), fmtInt(e.gifts_awaiting_address), 'kpi-gifts-awaiting')),
      card(t('pointsWeekly'),
        h('div', { class: 'grid two' },
          h('div', null, h('h3', null, t('issuedWeekly')),
            barChart(weeks.map((w) => ({ label: `${w.week} ${t('issuedPts')}`, short: w.week.slice(5), value: w.issued })), 'points-issued-chart')),
          h('div', null, h('h3', null, t('redeemedWeekly')),
            barChart(weeks.map((w) => ({ label: `${w.week} ${t('redeemedPts')}`, short: w.week.slice(5), value: w.redeemed })), 'points-redeemed-chart', '#fbbc04'))),
        weeks.length ? table([t('week'), [t('issuedPts'), 'num'], [t('redeemedPts'), 'num'], [t('spentPts'), 'num'], [t('clawedPts'), 'num'], [t('expiredPts'), 'num']],
          weeks.slice().reverse().map((w) => h('tr', null, h('td', { class: 'code' }, w.week), h('td', { class: 'num' }, fmtInt(w.issued)), h('td', { class: 'num' }, fmtInt(w.redeemed)),
            h('td', { class: 'num' }, fmtInt(w.spent)), h('td', { class: 'num' }, fmtInt(w.clawed_back)), h('td', { class: 'num' }, fmtInt(w.expired)))), { id: 'points-weeks', class: 'stack' }) : empty(t('noData'))),
      card(t('stockAlerts'), e.stock_alerts.length ? table(itemHeads, itemRows(e.stock_alerts), { id: 'stock-alerts', class: 'stack' }) : empty(t('noAlerts'))),
      card(t('topItems'), e.top_items.length ? table(itemHeads, itemRows(e.top_items), { id: 'top-items', class: 'stack' }) : empty(t('noItems'))),
      card(t('giftsToShip'), toShip.redemptions.length ? table(['#', t('item'), t('shipTo'), t('ship')], toShip.redemptions.map(shipRow), { id: 'gifts-to-ship', class: 'stack' }) : empty(t('noGifts'))),
      card(t('levelsCol'), e.levels.length ? table([t('levelsCol'), [t('minPoints'), 'num'], [t('multiplier'), 'num']],
        e.levels.map((l) => h('tr', null, h('td', { class: 'pool-name' }, l.name), h('td', { class: 'num' }, fmtInt(l.min_points)), h('td', { class: 'num' }, '×' + l.multiplier))), { id: 'levels', class: 'stack' }) : empty(t('none'))));
  }

  const SAMPLE_SCRIPT = `# ${'A member journey; see docs/scenarios.md'}
start: "2025-03-03 07:30"
zone: Asia/Shanghai
staff: chayi01
open_kfid: wkSHANCHA
steps:
  - {add: wm_try, state: xhs, welcome_code: WC-TRY-1, name: 试用}
  - {at: +2h, join_group: wm_try, chat: wrTeaFriends01}
  - {at: 2025-03-04 07:05, kf: wm_try, text: 打卡}
  - {at: 2025-03-04 12:20, order: wm_try, id: TRY001, amount: 29.9}
`;

  async function viewScenarios(main) {
    const sc = await api('/api/v1/scenarios');
    const st = sc.status;
    const result = h('div', { id: 'scenario-result' });
    const editor = h('textarea', { rows: 18, spellcheck: 'false', id: 'scenario-yaml' });
    const picker = h('select', { id: 'scenario-file', onchange: () => { editor.value = sc.files[picker.selectedIndex].yaml; } },
      sc.files.map((f) => h('option', null, f.name)));
    if (sc.files.length) editor.value = sc.files[0].yaml;
    const base = (n) => n.split('/').pop();
    async function run(btn, fn) {
      btn.disabled = true; result.replaceChildren(t('loading'));
      try { await fn(); } catch (err) { result.replaceChildren(errorBox(err)); } finally { btn.disabled = false; }
    }
    const validateBtn = h('button', { class: 'primary', type: 'button', id: 'validate-btn', onclick: () => run(validateBtn, async () => {
      const r = await api('/api/v1/scenarios/validate?name=' + encodeURIComponent(base(picker.value)), { method: 'POST', body: editor.value, headers: { 'Content-Type': 'application/yaml' } });
      result.replaceChildren(h('p', { class: 'ok-msg' }, `✓ ${t('valid')} · ${t('version')} ${r.version}`));
    }) }, t('validate'));
    const reloadBtn = h('button', { type: 'button', id: 'reload-btn', onclick: () => run(reloadBtn, async () => {
      const r = await api('/api/v1/scenarios/reload', { method: 'POST' });
      result.replaceChildren(h('p', { class: 'ok-msg' }, `✓ ${t('reloaded')} · ${t('version')} ${r.status.version}${r.changed ? '' : ' (' + t('unchanged') + ')'}`));
    }) }, t('reload'));
    const script = h('textarea', { rows: 10, spellcheck: 'false', id: 'simulate-script' });
    script.value = SAMPLE_SCRIPT;
    const transcript = h('div', { id: 'simulate-output' });
    const simBtn = h('button', { class: 'primary', type: 'button', id: 'simulate-btn', onclick: async () => {
      simBtn.disabled = true; transcript.replaceChildren(t('loading'));
      try {
        const out = await api('/api/v1/scenarios/simulate', { method: 'POST', body: script.value, headers: { 'Content-Type': 'application/yaml' } });
        transcript.replaceChildren(h('pre', null, out));
      } catch (err) { transcript.replaceChildren(errorBox(err)); } finally { simBtn.disabled = false; }
    } }, t('run'));
    const summary = Object.entries(sc.summary || {}).map(([k, v]) => h('span', { class: 'chip' }, `${label('summary', k)}${colon()}${v}`));
    main.append(h('h1', null, t('scenarios')),
      h('div', { class: 'kpis' }, kpi(t('version'), st.version, 'scenario-version'), kpi(t('loadedAt'), when(st.loaded_at)),
        kpi(t('reloads'), String(st.reloads)), kpi(t('failures'), String(st.failures))),
      card(t('lastError'), st.last_error ? h('pre', { id: 'last-error' }, st.last_error) : h('p', { class: 'ok-msg' }, t('none')),
        h('p', { class: 'muted', id: 'scenario-source' }, `${t('source')}${colon()}${st.source === 'embedded' ? t('embedded') : st.source}`),
        h('div', { class: 'chips', id: 'scenario-summary' }, summary),
        st.source === 'embedded' ? h('p', { class: 'muted' }, t('embeddedNote')) : null),
      card(t('file'), h('div', { class: 'row' }, picker, validateBtn, reloadBtn), h('div', { style: 'margin-top:.5rem' }, editor), result),
      card(t('simulate'), h('p', { class: 'muted' }, t('simulateHint')), script, h('div', { class: 'row', style: 'margin-top:.5rem' }, simBtn), transcript));
  }

  async function viewOperations(main) {
    const o = await api('/api/v1/operations');
    const pl = o.pipeline || {};
    const failedBody = h('tbody', null, o.failed_actions.map((a) => {
      const btn = h('button', { type: 'button', class: 'retry-btn', onclick: async () => {
        btn.disabled = true;
        try { await api(`/api/v1/outbox/${a.id}/retry`, { method: 'POST' }); btn.replaceWith(h('span', { class: 'ok-msg' }, t('retried'))); } catch (err) { btn.replaceWith(errorBox(err)); }
      } }, t('retry'));
      return h('tr', null, h('td', null, String(a.id)), h('td', null, label('action', a.kind)), h('td', null, a.member_id || ''), h('td', { class: 'num' }, String(a.attempts || 0)),
        h('td', { class: 'error' }, a.last_error || ''), h('td', null, btn));
    }));
    // Failed events (a handler failed on a healthy store) are replayed
    // through the engine's usual idempotency once the cause is fixed.
    const replayBtn = h('button', { type: 'button', class: 'retry-btn', id: 'replay-events-btn', onclick: async () => {
      replayBtn.disabled = true;
      try { const r = await api('/api/v1/events/retry', { method: 'POST' }); replayBtn.replaceWith(h('span', { class: 'ok-msg' }, `${t('retried')} (${r.retried})`)); } catch (err) { replayBtn.replaceWith(errorBox(err)); }
    } }, t('retryEvents'));
    const health = o.health || {};
    main.append(h('h1', null, t('operations')),
      h('div', { class: 'kpis' },
        kpi(t('eventLag'), fmtInt(o.event_lag), 'ops-lag'),
        kpi(t('storeWritable'), health.writable === false ? t('no') : t('yes'), 'ops-writable'),
        kpi(t('failedEvents'), fmtInt(o.events.failed || 0), 'ops-failed-events'),
        kpi(t('possiblyDelivered'), fmtInt(o.outbox.possibly_delivered || 0), 'ops-possibly-delivered'),
        kpi(t('lagSeconds'), o.event_lag_seconds ? o.event_lag_seconds.toFixed(1) + ' s' : '—'),
        kpi(t('outboxDepth'), fmtInt(o.outbox_depth), 'ops-outbox'),
        kpi(t('overdue'), o.outbox_overdue_seconds ? o.outbox_overdue_seconds.toFixed(1) + ' s' : '—'),
        kpi(t('sent'), fmtInt(o.outbox.sent)),
        kpi(t('failedActions'), fmtInt(o.outbox.failed), 'ops-failed'),
        kpi(t('pipeline'), o.running === false ? t('stopped') : t('running'))),
      ...((o.events.failed || 0) > 0 ? [card(t('failedEvents'), h('div', { class: 'row' }, replayBtn))] : []),
      h('div', { class: 'grid side' },
        card(t('failedActions'), o.failed_actions.length ? h('div', { class: 'scroll' }, h('table', null, h('thead', null, h('tr', null,
          h('th', null, 'ID'), h('th', null, t('kind')), h('th', null, t('member')), h('th', { class: 'num' }, t('attempts')), h('th', null, t('lastErr')), h('th', null, ''))), failedBody)) : empty(t('noFailed'))),
        card(t('wecomErrors'), o.wecom_errors.length ? table([t('api'), t('errcode'), [t('count'), 'num']],
          o.wecom_errors.map((e) => h('tr', null, h('td', null, e.api), h('td', null, e.errcode), h('td', { class: 'num' }, fmtInt(e.count))))) : empty(t('noErrors')))),
      card(t('pipeline'), h('div', { class: 'chips', id: 'pipeline-chips' }, Object.entries(pl).map(([k, v]) => h('span', { class: 'chip' }, `${label('pipeline', k)}${colon()}${fmtInt(v)}`)),
        o.scenario ? h('span', { class: 'chip' }, `${t('scenarios')} ${t('version')}${colon()}${o.scenario.version}`) : null)));
    refreshSoon(5000);
  }

  async function viewSandbox(main) {
    if (!SANDBOX) { main.append(h('h1', null, t('sandbox')), empty(t('notSandbox'))); return; }
    const sc = await api('/api/v1/scenarios');
    const newID = () => 'wm_demo_' + Math.random().toString(36).slice(2, 8);
    const member = h('input', { id: 'sim-member', value: newID() });
    const name = h('input', { id: 'sim-name', value: lang === 'zh' ? '小新' : 'Newbie' });
    const channel = h('select', { id: 'sim-channel' }, sc.channels.map((c) => h('option', { value: c.state }, `${c.name} (${c.state})`)));
    const amount = h('input', { id: 'sim-amount', value: '29.90', inputmode: 'decimal' });
    const log = h('ul', { class: 'log', id: 'sim-log' });
    const profile = h('div', { id: 'sim-profile' });
    async function fire(action) {
      const r = await api('/api/v1/sandbox/events', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ action, member: member.value.trim(), name: name.value, state: channel.value, amount: amount.value }) });
      log.prepend(h('li', null, `${when(new Date().toISOString())} · ${label('sim', action)} · #${r.event.seq} · ${r.processed ? t('processed') : t('queued')}`,
        r.note ? h('span', { class: 'muted' }, ' · ', r.note) : null));
      await showProfile();
    }
    async function showProfile() {
      try {
        // Give the outbox a moment to record what was sent.
        await new Promise((res) => setTimeout(res, 300));
        profile.replaceChildren(memberProfile(await api('/api/v1/members/' + encodeURIComponent(member.value.trim()))));
      } catch (err) { profile.replaceChildren(err.status === 404 ? empty(t('noMembers')) : errorBox(err)); }
    }
    const btn = (action, label) => {
      const b = h('button', { type: 'button', class: 'primary', id: 'sim-' + action, onclick: async () => {
        b.disabled = true;
        try { await fire(action); } catch (err) { log.prepend(h('li', { class: 'error' }, String(err.message))); } finally { b.disabled = false; }
      } }, label);
      return b;
    };
    main.append(h('h1', null, t('sandbox')), card(null, h('p', { class: 'muted' }, t('sandboxIntro')),
      h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
        h('label', null, t('member'), member), h('label', null, t('name'), name), h('label', null, t('channel'), channel), h('label', null, t('amount'), amount)),
      h('div', { class: 'row' }, btn('add', t('add')), btn('join_group', t('joinGroup')), btn('check_in', t('checkIn')), btn('order', t('order')),
        h('button', { type: 'button', id: 'sim-journey', onclick: async () => {
          for (const a of ['add', 'join_group', 'check_in', 'order']) {
            try { await fire(a); } catch (err) { log.prepend(h('li', { class: 'error' }, String(err.message))); break; }
          }
        } }, t('journey')),
        h('button', { type: 'button', onclick: () => { member.value = newID(); profile.replaceChildren(); } }, t('newMember'))), log), profile);
  }

  // ---- segments (客户分群): the scenario's segments and a builder whose
  // count follows every change (POST /api/v1/segments/count; the previous
  // count is aborted, and the server stops scanning for it) ----
  async function viewSegments(main) {
    const v = await api('/api/v1/segments');
    const cat = v.catalog;
    for (const s of cat.stages) stageNames[s.stage] = s.name;
    const form = h('form', { class: 'segment-form', id: 'segment-form', onsubmit: (e) => e.preventDefault() });
    const chipSet = (name, items) => h('div', { class: 'chips seg-set', 'data-rule': name }, items.map(([value, text]) =>
      h('label', { class: 'chip seg-chip' }, h('input', { type: 'checkbox', name, value }), ' ', text)));
    const num = (name, label, attrs) => h('label', null, label, h('input', Object.assign({ type: 'number', name, min: 0, inputmode: 'numeric' }, attrs || {})));
    const allTags = cat.tags.flatMap((g) => g.tags.map((x) => [x, x]));
    const group = (label, control) => h('fieldset', { class: 'seg-rule' }, h('legend', null, label), control);
    form.append(
      group(t('stage'), chipSet('stages', cat.stages.map((s) => [s.stage, stageLabel(s.stage)]))),
      group(t('channel'), chipSet('channels', cat.channels.map((c) => [c.state, c.name]))),
      cat.staff.length ? group(t('staff'), chipSet('staff', cat.staff.map((x) => [x, x]))) : null,
      cat.levels.length ? group(t('level'), chipSet('levels', cat.levels.map((x) => [x, x]))) : null,
      group(t('tagsAny'), chipSet('tags_any', allTags)),
      group(t('tagsNone'), chipSet('tags_none', allTags)),
      h('div', { class: 'seg-nums' }, num('silent_days', t('silentDays')), num('active_days', t('activeDays')), num('added_within', t('addedWithin')),
        num('min_spend_yuan', t('segMinSpend'), { step: '0.01' }), num('min_orders', t('minOrders')),
        h('label', { class: 'seg-lost' }, h('input', { type: 'checkbox', name: 'lost', value: 'true' }), ' ', t('lostOnly'))),
      h('div', { class: 'row' }, h('button', { type: 'button', id: 'segment-reset', onclick: () => { form.reset(); changed(); } }, t('reset'))));
    const countBox = h('div', { class: 'kpis' }, kpi(t('liveCount'), '—', 'segment-count'), kpi(t('members_total'), '—', 'segment-of'));
    // The view is not in the document until it is built: keep the elements.
    const countEl = countBox.querySelector('#segment-count'), ofEl = countBox.querySelector('#segment-of');
    // On a phone the result card is below the long builder: a bar at the
    // bottom of the builder keeps the count in sight while choosing.
    const sticky = h('div', { class: 'seg-sticky', id: 'segment-sticky', 'aria-live': 'polite' });
    const problem = h('p', { class: 'error', id: 'segment-problem', hidden: true });
    const split = h('div', { id: 'segment-split' });
    const sample = h('div', { id: 'segment-sample' });
    const yaml = h('pre', { class: 'yaml', id: 'segment-yaml' });

    // filter reads the form into the API's (and the YAML's) segment keys.
    function filter() {
      const f = {};
      for (const name of ['stages', 'channels', 'staff', 'levels', 'tags_any', 'tags_none']) {
        const vals = [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
        if (vals.length) f[name] = vals;
      }
      for (const name of ['silent_days', 'active_days', 'min_orders']) {
        const x = form.elements[name].value;
        if (x !== '') f[name] = Math.max(0, Math.floor(Number(x)));
      }
      if (form.elements.added_within.value !== '') f.added_within = Math.max(0, Math.floor(Number(form.elements.added_within.value))) + 'd';
      if (form.elements.min_spend_yuan.value !== '') f.min_spend_yuan = Number(form.elements.min_spend_yuan.value);
      if (form.elements.lost.checked) f.lost = true;
      return f;
    }
    function toYAML(f) {
      const lines = ['segments:', '  - name: ' + (lang === 'zh' ? '新分群' : 'my-segment')];
      for (const [k, x] of Object.entries(f)) lines.push(`    ${k}: ${Array.isArray(x) ? '[' + x.join(', ') + ']' : x}`);
      return lines.join('\n');
    }
    // load puts a segment's rules into the form (its channels as written).
    function load(f) {
      form.reset();
      for (const [k, x] of Object.entries(f || {})) {
        if (Array.isArray(x)) {
          for (const val of x) {
            const byState = cat.channels.find((c) => c.name === val);
            const box = form.querySelector(`input[name="${k}"][value="${CSS.escape(k === 'channels' && byState ? byState.state : val)}"]`);
            if (box) box.checked = true;
          }
        } else if (k === 'lost') form.elements.lost.checked = Boolean(x);
        else if (k === 'added_within') form.elements.added_within.value = String(parseInt(x, 10) || '');
        else if (form.elements[k]) form.elements[k].value = x;
      }
      changed();
    }

    // ruleText words one rule of a segment for the list.
    function ruleText(k, x) {
      const names = { stages: t('stage'), channels: t('channel'), staff: t('staff'), levels: t('level'), groups: t('groupsRule'), tags_any: t('tagsAny'),
        tags_all: t('tagsAll'), tags_none: t('tagsNone'), silent_days: t('silentDays'), active_days: t('activeDays'), added_within: t('addedWithin'),
        min_spend_yuan: t('segMinSpend'), min_orders: t('minOrders'), lost: t('lostOnly') };
      const word = (val) => (k === 'stages' ? stageLabel(val) : k === 'channels' ? ((cat.channels.find((c) => c.state === val) || {}).name || val) : String(val));
      if (k === 'lost') return names.lost;
      const shown = Array.isArray(x) ? x.map(word).join(lang === 'zh' ? '、' : ', ') : k === 'added_within' ? String(parseInt(x, 10)) : String(x);
      return `${names[k] || k}${colon()}${shown}`;
    }

    let timer = 0, inflight = null, seq = 0;
    function changed() {
      clearTimeout(timer);
      timer = setTimeout(count, 250);
    }
    async function count() {
      if (inflight) inflight.abort();
      inflight = new AbortController();
      const mine = ++seq;
      const f = filter();
      yaml.textContent = toYAML(f);
      countEl.textContent = t('counting');
      sticky.textContent = `${t('liveCount')}${colon()}${t('counting')}`;
      try {
        const r = await api('/api/v1/segments/count', { method: 'POST', body: JSON.stringify(Object.assign({ sample: 10 }, f)),
          headers: { 'Content-Type': 'application/json' }, signal: inflight.signal });
        if (mine !== seq) return;
        problem.hidden = true;
        countEl.textContent = fmtInt(r.total);
        sticky.textContent = `${t('liveCount')}${colon()}${fmtInt(r.total)} / ${fmtInt(r.members_total)}`;
        countEl.dataset.total = String(r.total);
        ofEl.textContent = fmtInt(r.members_total);
        split.replaceChildren(r.by_staff.length ? table([t('staff'), [t('membersCol'), 'num']],
          r.by_staff.map((x) => h('tr', null, h('td', null, x.staff_id || t('noStaff')), h('td', { class: 'num' }, fmtInt(x.members)))), { id: 'segment-split-table' }) : empty(t('noMembers')));
        sample.replaceChildren(r.sample.length ? table([t('name'), t('stage'), [t('channel'), 'hide-sm'], [t('staff'), 'hide-sm'], [t('level'), 'hide-sm'], [t('points'), 'num'], [t('checkIns'), 'num'], [t('orders'), 'num hide-sm'], [t('joined'), 'hide-sm']],
          memberTable(r.sample)) : empty(t('noMembers')));
      } catch (err) {
        if (err.name === 'AbortError' || mine !== seq) return;
        countEl.textContent = '—';
        sticky.textContent = String(err.message);
        problem.hidden = false;
        problem.textContent = String(err.message);
      }
    }
    form.addEventListener('input', changed);
    form.addEventListener('change', changed);

    const rows = v.segments.map((sg) => h('tr', { 'data-segment': sg.name },
      h('td', null, h('strong', null, sg.name), sg.description ? h('div', { class: 'muted' }, sg.description) : null),
      h('td', { class: 'hide-sm' }, h('div', { class: 'chips' }, Object.entries(sg.filter).map(([k, x]) => h('span', { class: 'chip' }, ruleText(k, x))))),
      h('td', { class: 'num seg-total' }, '…'),
      h('td', null, h('button', { type: 'button', class: 'seg-load', onclick: () => load(sg.filter) }, t('load')))));
    main.append(h('h1', null, t('segments')),
      card(t('segmentList'), v.segments.length ? table([t('segmentName'), [t('rules'), 'hide-sm'], [t('membersCol'), 'num'], ''], rows, { id: 'segment-table' }) : empty(t('none'))),
      h('div', { class: 'grid side' },
        card(t('segmentBuilder'), h('p', { class: 'muted' }, t('segmentNote')), form, sticky),
        h('div', null, card(t('segmentResult'), countBox, problem, h('h3', null, t('bySender')), split), card(t('asYAML'), yaml))),
      card(t('sampleMembers'), sample));
    count();
    // The named segments' counts, one after another (the server runs one count at a time).
    (async () => {
      for (const tr of rows) {
        try {
          const r = await api('/api/v1/segments/' + encodeURIComponent(tr.dataset.segment) + '?sample=0');
          tr.querySelector('.seg-total').textContent = fmtInt(r.total);
        } catch (err) { tr.querySelector('.seg-total').textContent = '—'; }
      }
    })();
  }

  // ---- broadcasts (群发): create with a preview (dry run: count and
  // per-staff split, nothing sent), schedule, and each run's report ----
  const BC = {
    zh: {
      newBroadcast: '新建群发', segment: '客户分群', via: '发送方式', text: '内容', at: '发送时间（留空为立即）', preview: '预览人数',
      send: '发送', schedule: '定时发送', scheduled: '已排期', targeted: '目标客户', reachable: '可触达', skipped: '跳过', tasks: '群发任务',
      confirmedBy: '员工已确认', delivered: '已送达', ordersIn7: '7 天内订单', gmv: '7 天内成交额', inScenario: '剧本中的群发', runs: '群发记录',
      next: '下次', report: '群发报告', results: '结果', customers: '客户结果', noRuns: '还没有群发。', perStaff: '按发送员工',
      viaLabel: { mass_send: '客户群发（员工确认）', group: '客户群群发', kf: '微信客服（48 小时内）' }, queuedCol: '已排队',
      bStatus: { scheduled: '已排期', running: '发送中', done: '已完成', canceled: '已取消' }, yamlNote: '剧本 YAML', queuedOK: '已创建：',
      result: {
        queued: '待发送', batched: '已合并，待创建任务', waiting_confirm: '待员工确认', sent: '已创建任务', delivered: '已送达', not_friend: '已不是好友',
        over_quota: '超出本月群发次数', not_confirmed: '员工未确认', left_out: '员工未选择该客户', canceled: '已取消', failed: '发送失败',
        possibly_delivered: '可能已送达', task_failed: '任务失败', task_unknown: '任务结果未知', unknown: '未知',
        group_post: '已发到客户群', undelivered: '未送达',
      },
      skippedAs: (reason) => `跳过：${reason}`,
      skip: { quota: '超出本月群发次数', not_a_friend: '没有跟进员工', outside_window: '不在微信客服 48 小时内', contact_cap: '触达频次上限', refused: '企业微信会拒绝', no_group: '不在任何客户群' },
    },
    en: {
      newBroadcast: 'New broadcast', segment: 'Segment', via: 'Via', text: 'Text', at: 'When (empty: now)', preview: 'Preview',
      send: 'Send', schedule: 'Schedule', scheduled: 'scheduled', targeted: 'Targeted', reachable: 'Reachable', skipped: 'Skipped', tasks: 'Tasks',
      confirmedBy: 'Confirmed by staff', delivered: 'Delivered', ordersIn7: 'Orders in 7 days', gmv: 'GMV in 7 days', inScenario: 'Broadcasts in the scenario', runs: 'Runs',
      next: 'Next', report: 'Broadcast report', results: 'Results', customers: 'Per customer', noRuns: 'No broadcasts yet.', perStaff: 'By sending staff',
      viaLabel: { mass_send: 'Mass message (staff confirm)', group: 'Customer groups', kf: 'WeChat Customer Service (within 48 h)' }, queuedCol: 'Queued',
      bStatus: { scheduled: 'scheduled', running: 'sending', done: 'done', canceled: 'canceled' }, yamlNote: 'Scenario YAML', queuedOK: 'Created: ',
      result: {
        queued: 'queued', batched: 'batched, task pending', waiting_confirm: 'waiting for staff', sent: 'task created', delivered: 'delivered', not_friend: 'no longer a contact',
        over_quota: 'over the monthly quota', not_confirmed: 'staff did not confirm', left_out: 'left out by staff', canceled: 'canceled', failed: 'failed',
        possibly_delivered: 'possibly delivered', task_failed: 'task failed', task_unknown: 'task outcome unknown', unknown: 'unknown',
        group_post: 'posted to her groups', undelivered: 'not delivered',
      },
      skippedAs: (reason) => `skipped: ${reason}`,
      skip: { quota: 'monthly quota', not_a_friend: 'no staff contact', outside_window: 'outside the 48 h window', contact_cap: 'contact cap', refused: 'WeCom would refuse', no_group: 'in no customer group' },
    },
  };
  const bt = (k) => (BC[lang] && k in BC[lang] ? BC[lang][k] : BC.en[k]);
  // A result is a status, or skipped:<reason> (the reason's words from skip).
  const bcResult = (r) => {
    const [kind, reason] = String(r).split(':');
    if (kind === 'skipped' && reason !== undefined) return bt('skippedAs')(bt('skip')[reason] || reason);
    return bt('result')[r] || r;
  };
  const bcStatus = (x) => bt('bStatus')[x] || x;
  const viaName = (v) => bt('viaLabel')[v] || v;

  async function viewBroadcasts(main) {
    const [list, segs] = await Promise.all([api('/api/v1/broadcasts'), api('/api/v1/segments').catch(() => ({ segments: [] }))]);
    const segNames = (segs.segments || []).map((x) => x.name);
    const segment = h('select', { id: 'bc-segment', name: 'segment' }, segNames.map((n) => h('option', { value: n }, n)));
    const via = h('select', { id: 'bc-via', name: 'via' }, ['mass_send', 'kf', 'group'].map((v) => h('option', { value: v }, viaName(v))));
    const text = h('textarea', { id: 'bc-text', rows: 3, placeholder: '{{.Name}}，本周上新……' });
    const at = h('input', { id: 'bc-at', type: 'datetime-local' });
    const out = h('div', { id: 'bc-preview' });
    const request = (dry) => {
      const body = { text: text.value, via: via.value, dry_run: dry };
      if (via.value !== 'group') body.segment = segment.value;
      if (at.value) body.at = at.value.replace('T', ' ');
      return api('/api/v1/broadcasts', { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    };
    const showError = (err) => out.replaceChildren(h('p', { class: 'error', id: 'bc-error' }, String(err.message)));
    const previewBtn = h('button', { type: 'button', id: 'bc-preview-btn', onclick: async () => {
      try {
        const r = await request(true);
        const p = r.preview;
        const skipped = Object.values(p.skipped || {}).reduce((a, b) => a + b, 0);
        out.replaceChildren(h('div', { class: 'kpis' }, kpi(bt('targeted'), fmtInt(p.targeted), 'bc-count'), kpi(bt('reachable'), fmtInt(p.targeted - skipped)), kpi(bt('skipped'), fmtInt(skipped))),
          Object.keys(p.per_staff).length ? table([bt('perStaff'), [t('membersCol'), 'num']],
            Object.entries(p.per_staff).sort().map(([k, v]) => h('tr', null, h('td', null, k), h('td', { class: 'num' }, fmtInt(v)))), { id: 'bc-split' }) : null,
          Object.keys(p.skipped).length ? kvTable(Object.entries(p.skipped).map(([k, v]) => [bt('skip')[k] || k, fmtInt(v)])) : null);
      } catch (err) { showError(err); }
    } }, bt('preview'));
    const sendBtn = h('button', { type: 'button', class: 'primary', id: 'bc-send-btn', onclick: async () => {
      try {
        const r = await request(false);
        out.replaceChildren(h('p', null, bt('queuedOK'), h('a', { href: '#broadcast/' + encodeURIComponent(r.id), id: 'bc-created' }, r.id), ' · ', when(r.at)));
      } catch (err) { showError(err); }
    } }, bt('send'));
    main.append(h('h1', null, t('broadcasts')),
      card(bt('newBroadcast'), h('form', { class: 'filters', id: 'bc-form', onsubmit: (e) => e.preventDefault() },
        h('label', null, bt('segment'), segment), h('label', null, bt('via'), via), h('label', null, bt('at'), at),
        h('label', { class: 'wide' }, bt('text'), text)), h('div', { class: 'row' }, previewBtn, sendBtn), out),
      card(bt('inScenario'), list.scenario.length ? table([t('name'), bt('segment'), bt('via'), [bt('next'), 'hide-sm'], [t('file'), 'hide-sm']],
        list.scenario.map((b) => h('tr', null, h('td', null, b.name), h('td', null, b.segment || '—'), h('td', null, viaName(b.via)),
          h('td', { class: 'hide-sm' }, b.next ? when(b.next) : '—'), h('td', { class: 'hide-sm' }, b.where))), { id: 'bc-scenario' }) : empty(t('none'))),
      card(bt('runs'), list.broadcasts.length ? table([t('time'), t('name'), [bt('via'), 'hide-sm'], t('status'), [bt('targeted'), 'num'], [bt('queuedCol'), 'num hide-sm'], [bt('skipped'), 'num hide-sm'], [bt('delivered'), 'num hide-sm']],
        list.broadcasts.map((r) => h('tr', null, h('td', null, when(r.occurrence)),
          h('td', null, h('a', { href: '#broadcast/' + encodeURIComponent(r.id) }, r.name)), h('td', { class: 'hide-sm' }, viaName(r.via)), h('td', null, bcStatus(r.status)),
          h('td', { class: 'num' }, fmtInt(r.targeted)), h('td', { class: 'num hide-sm' }, fmtInt(r.queued)),
          h('td', { class: 'num hide-sm' }, fmtInt(Object.values(r.skipped || {}).reduce((a, b) => a + b, 0))),
          // runs keep their report's counts since they were counted (older ones: open the report)
          h('td', { class: 'num hide-sm' }, r.counted ? fmtInt(r.delivered) : '—'))), { id: 'bc-runs' }) : empty(bt('noRuns'))));
  }

  async function viewBroadcast(main, params, id) {
    const r = await api('/api/v1/broadcasts/' + encodeURIComponent(id) + '?limit=200');
    main.append(h('p', null, h('a', { href: '#broadcasts' }, '← ' + t('broadcasts'))), h('h1', null, bt('report') + ' · ' + r.name),
      h('p', { class: 'muted' }, when(r.occurrence), ' · ', viaName(r.via), ' · ', bcStatus(r.status), r.segment ? ' · ' + r.segment : ''),
      h('div', { class: 'kpis' }, kpi(bt('targeted'), fmtInt(r.targeted), 'bc-targeted'), kpi(bt('tasks'), fmtInt(r.tasks), 'bc-tasks'),
        kpi(bt('confirmedBy'), fmtInt(r.confirmed), 'bc-confirmed'), kpi(bt('delivered'), fmtInt(r.delivered), 'bc-delivered'),
        kpi(bt('ordersIn7'), fmtInt(r.orders), 'bc-orders'), kpi(bt('gmv'), yuan(r.gmv_fen), 'bc-gmv')),
      card(bt('results'), kvTable(Object.entries(r.results).sort().map(([k, v]) => [bcResult(k), fmtInt(v)]))),
      r.per_staff && Object.keys(r.per_staff).length ? card(bt('perStaff'), kvTable(Object.entries(r.per_staff).sort().map(([k, v]) => [k, fmtInt(v)]))) : null,
      card(bt('customers'), r.customers.length ? table([t('name'), t('staff'), t('status'), [t('reason'), 'hide-sm']],
        r.customers.map((c) => h('tr', null, h('td', null, c.member ? h('a', { href: '#member/' + encodeURIComponent(c.member) }, c.name || c.member) : c.chat),
          h('td', null, c.staff || '—'), h('td', null, bcResult(c.status)), h('td', { class: 'hide-sm' }, c.reason || ''))), { id: 'bc-customers', class: 'stack' }) : empty(t('noMembers'))));
  }

  // ---- SOPs (客户SOP): each sequence as a timeline of its steps with what
  // became of each step's messages, its members and the step each is at,
  // pause / resume. SOPs are written in the scenario (剧本 page). ----
  const SO = {
    zh: {
      trigger: '触发', stopWhen: '结束条件', steps: '步骤', enrolled: '进入人数', running: '进行中', stopped: '已结束', done: '已走完',
      paused: '已暂停', active: '运行中', pause: '暂停', resume: '恢复', viewMembers: '查看客户', step: '步骤', when: '时间', via: '方式',
      text: '内容', outcome: '发送情况', memberCol: '客户', startedCol: '进入时间', stateCol: '状态', atStep: '当前步骤', nextAt: '下一步',
      stoppedBy: '结束原因', allStates: '全部', more: '更多', none: '剧本里还没有 SOP（sops:）。', noMembers: '还没有客户进入这个 SOP。',
      welcomeNote: '欢迎语的跟进消息随每次欢迎语发出，在客户详情的时间线里查看。', pausedNote: '暂停期间不会有新客户进入，到期的步骤会被取消。',
      segment: '客户分群', sopCount: 'SOP 数', pausedCount: '已暂停', day: (d) => (d === 0 ? '当天' : `第 ${d} 天`),
      after: (n, unit) => `${n} ${{ d: '天', h: '小时', m: '分钟' }[unit]}后`,
      trig: { added: '添加员工', joined_group: '进入客户群', silent: '成为沉默客户', welcome: '欢迎语之后', stage: (x) => `进入阶段「${x}」`, tag: (x) => `打上标签「${x}」`, date: () => '生日当天' },
      stop: { purchase: '下单', lost: '流失', active: '客户再次活跃', tag: (x) => `打上标签「${x}」` },
      vias: { staff_task: '员工任务（应用消息）', mass_send: '客户群发（员工确认）', kf: '微信客服', group: '客户群群发' },
      status: { sent: '已发送', queued: '待发送' }, stoppedKpi: '已结束', wontSend: '已结束，不再发送', membersTitle: '客户', welcomeTitle: (x) => `欢迎语跟进（${x}）`,
    },
    en: {
      trigger: 'Trigger', stopWhen: 'Stops on', steps: 'Steps', enrolled: 'Enrolled', running: 'running', stopped: 'stopped', done: 'done',
      paused: 'Paused', active: 'Active', pause: 'Pause', resume: 'Resume', viewMembers: 'Customers', step: 'Step', when: 'When', via: 'Via',
      text: 'Text', outcome: 'Messages', memberCol: 'Customer', startedCol: 'Started', stateCol: 'State', atStep: 'Step', nextAt: 'Next',
      stoppedBy: 'Stopped by', allStates: 'All', more: 'More', none: 'The scenario has no SOPs (sops:).', noMembers: 'Nobody has entered this SOP yet.',
      welcomeNote: 'A welcome script\'s follow-ups go with each welcome: see them on the customer\'s timeline.', pausedNote: 'While paused nobody enters and steps falling due are canceled.',
      segment: 'Segment', sopCount: 'SOPs', pausedCount: 'Paused', day: (d) => `Day ${d}`,
      after: (n, unit) => `after ${n} ${{ d: 'day', h: 'hour', m: 'minute' }[unit]}${n === 1 ? '' : 's'}`,
      trig: { added: 'adds a staff member', joined_group: 'joins a customer group', silent: 'goes silent', welcome: 'after the welcome', stage: (x) => `reaches ${x}`, tag: (x) => `gets tag ${x}`, date: () => 'on her birthday' },
      stop: { purchase: 'an order', lost: 'lost', active: 'active again', tag: (x) => `tag ${x}` },
      vias: { staff_task: 'Staff task (app message)', mass_send: 'Mass message (staff confirm)', kf: 'WeChat Customer Service', group: 'Customer groups' },
      status: { sent: 'sent', queued: 'queued' }, stoppedKpi: 'Stopped', wontSend: 'stopped: not sent', membersTitle: 'Customers', welcomeTitle: (x) => `Welcome follow-ups (${x})`,
    },
  };
  const st = (k) => (SO[lang] && k in SO[lang] ? SO[lang][k] : SO.en[k]);
  // A trigger or stop condition "kind[:arg]" in words (stage names the scenario's).
  const sopWords = (dict, x) => {
    const [kind, arg] = String(x).split(/:(.*)/s);
    const w = st(dict)[kind];
    if (typeof w === 'function') return w(kind === 'stage' ? stageLabel(arg) : arg);
    return w || x;
  };
  // A step's time: day N [HH:MM], or (a welcome follow-up) "after" as 2d, 36h or 90m.
  const stepWhen = (s) => {
    const m = /^(\d+)([dhm])$/.exec(s.after || '');
    if (m) return st('after')(Number(m[1]), m[2]);
    return st('day')(s.day) + (s.at ? ' ' + s.at : '');
  };
  // A step message's status: a staff task or kf message is "sent"; the rest as the broadcasts say.
  const sopResult = (k) => st('status')[k] || bcResult(k);
  const sopStates = { running: () => st('running'), stopped: () => st('stopped'), done: () => st('done') };
  // counts {status: n} as chips, largest first.
  const outcomeChips = (counts) => {
    const list = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
    return list.length ? h('div', { class: 'chips' }, list.map(([k, v]) => h('span', { class: 'chip', 'data-status': k }, `${sopResult(k)} ${fmtInt(v)}`))) : h('span', { class: 'muted' }, '—');
  };
  const stepsTable = (sop, id) => table(['#', st('when'), st('via'), [st('text'), 'hide-sm'], st('outcome')],
    sop.steps.map((s, i) => h('tr', { 'data-step': String(i) }, h('td', null, String(i + 1)), h('td', null, stepWhen(s)), h('td', null, st('vias')[s.via] || s.via),
      h('td', { class: 'hide-sm sop-text' }, s.text), h('td', null, sop.welcome ? h('span', { class: 'muted' }, '—') : outcomeChips(s.counts)))), { id, class: 'stack' });
  const stateButton = (sop) => {
    if (sop.welcome) return null;
    const btn = h('button', { type: 'button', class: sop.paused ? 'primary' : '', 'data-sop-switch': sop.name, onclick: async () => {
      btn.disabled = true;
      try {
        const path = `/api/v1/sops/${encodeURIComponent(sop.name)}`;
        await api(`${path}/${sop.paused ? 'resume' : 'pause'}`, { method: 'POST' });
        // The engine applies it in order with the events before it: wait (up to 10 s) until it has.
        for (let i = 0; i < 50; i++) {
          const r = await api(path + '?limit=1');
          if (r.sop.paused !== sop.paused) break;
          await new Promise((ok) => setTimeout(ok, 200));
        }
        route(true);
      } catch (err) { btn.replaceWith(h('p', { class: 'error' }, String(err.message))); }
    } }, sop.paused ? st('resume') : st('pause'));
    return btn;
  };
  const sopMeta = (sop) => h('div', { class: 'sop-meta' },
    h('span', null, h('b', null, st('trigger') + colon()), sopWords('trig', sop.trigger)),
    sop.segment ? h('span', null, h('b', null, st('segment') + colon()), sop.segment) : null,
    sop.stop.length ? h('span', null, h('b', null, st('stopWhen') + colon()), sop.stop.map((x) => sopWords('stop', x)).join(lang === 'zh' ? '、' : ', ')) : null,
    sop.file ? h('span', { class: 'muted hide-sm', title: sop.file }, `${sop.file.split('/').pop()}:${sop.line}`) : null);
  const sopBadge = (sop) => (sop.welcome ? null : h('span', { class: 'badge ' + (sop.paused ? 'bad' : 'ok'), 'data-sop-state': sop.name }, sop.paused ? st('paused') : st('active')));

  async function viewSOPs(main) {
    const r = await api('/api/v1/sops');
    const sops = r.sops.filter((x) => !x.welcome).concat(r.sops.filter((x) => x.welcome)); // the scenario's first
    main.append(h('h1', null, t('sops')),
      h('div', { class: 'kpis' }, kpi(st('sopCount'), fmtInt(r.sops.filter((x) => !x.welcome).length), 'sop-count'),
        kpi(st('enrolled'), fmtInt(r.sops.reduce((a, x) => a + x.enrolled, 0)), 'sop-enrolled'),
        kpi(st('stoppedKpi'), fmtInt(r.sops.reduce((a, x) => a + Object.values(x.stopped || {}).reduce((p, q) => p + q, 0), 0)), 'sop-stopped'),
        kpi(st('pausedCount'), fmtInt(r.sops.filter((x) => x.paused).length), 'sop-paused')),
      ...(sops.length ? sops : [null]).map((sop) => (!sop ? card(null, empty(st('none'))) : h('section', { class: 'card sop', 'data-sop': sop.name },
        h('div', { class: 'row sop-head' }, h('h2', null, sop.welcome ? st('welcomeTitle')(sop.welcome) : sop.name, ' ', sopBadge(sop)),
          sop.welcome ? null : h('a', { href: '#sop/' + encodeURIComponent(sop.name), class: 'button' }, st('viewMembers')), stateButton(sop)),
        sopMeta(sop),
        sop.welcome ? h('p', { class: 'muted' }, st('welcomeNote')) : h('p', { class: 'muted' }, `${st('enrolled')} ${fmtInt(sop.enrolled)}`,
          Object.keys(sop.stopped || {}).length ? ` · ${st('stoppedBy')}${colon()}` + Object.entries(sop.stopped).map(([k, v]) => `${sopWords('stop', k)} ${fmtInt(v)}`).join(' · ') : ''),
        sop.paused ? h('p', { class: 'error' }, st('pausedNote')) : null,
        stepsTable(sop, null)))));
  }

  async function viewSOP(main, params, name) {
    const state = params.get('state') || '';
    const q = new URLSearchParams({ limit: '100' });
    if (state) q.set('state', state);
    if (params.get('cursor')) q.set('cursor', params.get('cursor'));
    const r = await api('/api/v1/sops/' + encodeURIComponent(name) + '?' + q);
    const sop = r.sop;
    const filter = h('select', { id: 'sop-state', onchange: () => { location.hash = '#sop/' + encodeURIComponent(name) + (filter.value ? '?state=' + filter.value : ''); } },
      h('option', { value: '' }, st('allStates')), ['running', 'stopped', 'done'].map((x) => h('option', { value: x, selected: x === state ? '' : null }, sopStates[x]())));
    const stepName = (i) => (i === undefined || i === null ? '—' : `${i + 1} · ${stepWhen(sop.steps[i])}`);
    const rows = r.members.map((m) => h('tr', { 'data-member': m.member },
      h('td', null, h('a', { href: '#member/' + encodeURIComponent(m.member) }, m.name || m.member)),
      h('td', { class: 'hide-sm' }, m.staff || '—'), h('td', { class: 'hide-sm' }, when(m.started_at)),
      h('td', null, h('span', { class: 'badge ' + (m.state === 'running' ? 'ok' : ''), 'data-state': m.state }, sopStates[m.state] ? sopStates[m.state]() : m.state),
        m.stop ? ' ' + sopWords('stop', m.stop) : ''),
      h('td', null, m.state === 'running' ? stepName(m.step) : '—', m.next_at ? h('div', { class: 'muted' }, when(m.next_at)) : null),
      // A stopped member's steps still owed are dropped by the outbox when due: say so.
      h('td', { class: 'hide-sm' }, h('div', { class: 'chips' }, m.steps.map((x, i) => {
        const owed = m.state === 'stopped' && (x === 'queued' || x === 'batched');
        return h('span', { class: 'chip', title: stepWhen(sop.steps[i] || {}), 'data-status': owed ? 'canceled' : x }, `${i + 1} ${owed ? st('wontSend') : sopResult(x)}`);
      })))));
    main.append(...[h('p', null, h('a', { href: '#sops' }, '← ' + t('sops'))),
      h('div', { class: 'row sop-head' }, h('h1', null, sop.name, ' ', sopBadge(sop)), stateButton(sop)), sopMeta(sop),
      sop.paused ? h('p', { class: 'error' }, st('pausedNote')) : null,
      h('div', { class: 'kpis' }, kpi(st('enrolled'), fmtInt(sop.enrolled), 'sop-enrolled'),
        kpi(st('stoppedKpi'), fmtInt(Object.values(sop.stopped || {}).reduce((a, b) => a + b, 0)), 'sop-stopped'),
        Object.entries(sop.stopped || {}).map(([k, v]) => kpi(`${st('stoppedBy')}${colon()}${sopWords('stop', k)}`, fmtInt(v)))),
      card(st('steps'), stepsTable(sop, 'sop-steps')),
      card(st('membersTitle'), h('div', { class: 'row' }, h('label', null, st('stateCol') + ' ', filter)),
        r.members.length ? table([st('memberCol'), [t('staff'), 'hide-sm'], [st('startedCol'), 'hide-sm'], st('stateCol'), st('atStep'), [st('steps'), 'hide-sm']], rows, { id: 'sop-members', class: 'stack' }) : empty(st('noMembers')),
        r.next_cursor ? h('p', null, h('a', { href: '#sop/' + encodeURIComponent(name) + '?' + new URLSearchParams(Object.assign(state ? { state } : {}, { cursor: r.next_cursor })), id: 'sop-more' }, st('more') + ' →')) : null)].filter(Boolean));
  }

  // ---- shell and routing ----
  const ROUTES = [
    ['overview', viewOverview], ['members', viewMembers], ['segments', viewSegments], ['campaigns', viewCampaigns], ['coupons', viewCoupons],
    ['economy', viewEconomy], ['broadcasts', viewBroadcasts], ['sops', viewSOPs], ['scenarios', viewScenarios], ['operations', viewOperations], ['sandbox', viewSandbox],
  ];
  let main, nav;
  function shell() {
    nav = h('nav', { class: 'tabs' }, ROUTES.filter(([name]) => name !== 'sandbox' || SANDBOX)
      .map(([name]) => h('a', { href: '#' + name, 'data-route': name }, t(name))));
    const tools = h('div', { class: 'tools' },
      SANDBOX ? h('span', { class: 'badge sandbox', id: 'sandbox-badge' }, t('sandboxBadge')) : null,
      h('button', { type: 'button', id: 'lang-toggle', onclick: () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem(LANG_KEY, lang); shell(); route(); } }, t('langToggle')),
      sessionStorage.getItem(TOKEN_KEY) ? h('button', { type: 'button', onclick: () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); } }, t('logout')) : null);
    main = h('main', { id: 'view' });
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = 'wecombot · ' + t('title');
    body.replaceChildren(h('header', { class: 'top' }, h('div', { class: 'bar' }, h('div', { class: 'brand' }, 'wecombot', h('small', { class: 'hide-sm' }, t('title'))), nav, tools)), main);
  }

  let generation = 0;
  // refreshSoon re-renders the current view after ms, silently, unless the
  // operator has moved on (operations page: lag and outbox move by the second).
  function refreshSoon(ms) {
    const gen = generation;
    setTimeout(() => { if (gen === generation && !document.hidden) route(true); }, ms);
  }
  async function route(silent) {
    const raw = location.hash.slice(1) || 'overview';
    const [path, qs] = raw.split('?');
    const params = new URLSearchParams(qs || '');
    let [name, ...rest] = path.split('/');
    let view = ROUTES.find(([n]) => n === name);
    let arg = rest.length ? decodeURIComponent(rest.join('/')) : undefined;
    if (name === 'member' && arg) view = ['members', (m, p) => viewMember(m, p, arg)];
    if (name === 'broadcast' && arg) view = ['broadcasts', (m, p) => viewBroadcast(m, p, arg)];
    if (name === 'sop' && arg) view = ['sops', (m, p) => viewSOP(m, p, arg)];
    if (!view) view = ROUTES[0];
    for (const a of nav.querySelectorAll('a')) a.classList.toggle('on', a.dataset.route === view[0]);
    const gen = ++generation;
    if (silent !== true) main.replaceChildren(h('div', { class: 'loading', 'aria-busy': 'true' }, h('p', { class: 'muted' }, t('loading'))));
    const fresh = h('div', null);
    try {
      await view[1](fresh, params);
      if (gen !== generation) return; // the operator moved on
      main.replaceChildren(fresh);
    } catch (err) {
      if (gen !== generation) return;
      main.replaceChildren(errorBox(err));
    }
    main.dataset.ready = String(gen);
  }

  window.addEventListener('hashchange', () => route());
  shell();
  route();
})();
