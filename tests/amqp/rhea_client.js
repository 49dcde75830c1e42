// A rhea (node.js AMQP 1.0) client for tests/amqp/t12_rhea.py.
//   node rhea_client.js send PORT QUEUE N          durable sends, prints "accepted K"
//   node rhea_client.js recv PORT QUEUE N CREDIT   receives N (credit CREDIT at a time),
//                                                  accepts each, prints the bodies as JSON
//   node rhea_client.js credit1 PORT QUEUE         attaches with credit 1, waits 1.5 s,
//                                                  prints how many messages arrived
'use strict';
const rhea = require('rhea');
const [mode, port, queue, nArg, creditArg] = process.argv.slice(2);
const n = parseInt(nArg || '0', 10);
const container = rhea.create_container({id: 'hamq-rhea-test-' + process.pid});
const conn = container.connect({host: '127.0.0.1', port: parseInt(port, 10),
                                reconnect: false, idle_time_out: 10000});
const fail = (msg) => { console.error('rhea: ' + msg); process.exit(1); };
setTimeout(() => fail('timed out'), 30000).unref();
conn.on('connection_error', (ctx) => fail('connection error ' + JSON.stringify(ctx.error)));
conn.on('disconnected', (ctx) => { if (!conn.done) fail('disconnected ' + (ctx.error || '')); });

if (mode === 'send') {
  const sender = conn.open_sender({target: {address: queue, capabilities: ['queue']}});
  let sent = 0, accepted = 0;
  const pump = () => {
    while (sender.sendable() && sent < n) {
      sender.send({durable: true, body: 'rhea-' + sent, application_properties: {seq: sent}});
      sent++;
    }
  };
  sender.on('sendable', pump);
  sender.on('accepted', () => {
    if (++accepted === n) { console.log('accepted ' + accepted); conn.done = true; conn.close(); }
  });
  sender.on('rejected', (ctx) => fail('rejected ' + JSON.stringify(ctx.delivery.remote_state)));
} else if (mode === 'recv') {
  const credit = parseInt(creditArg || '10', 10);
  const receiver = conn.open_receiver({source: {address: queue, capabilities: ['queue']},
                                       credit_window: 0, autoaccept: false});
  const got = [];
  receiver.add_credit(credit);
  receiver.on('message', (ctx) => {
    got.push({body: ctx.message.body, seq: ctx.message.application_properties.seq});
    ctx.delivery.accept();
    if (receiver.credit === 0 && got.length < n) receiver.add_credit(credit);
    if (got.length === n) {
      console.log(JSON.stringify(got));
      conn.done = true;
      setTimeout(() => conn.close(), 200);  // let the dispositions go out first
    }
  });
} else if (mode === 'credit1') {
  const receiver = conn.open_receiver({source: {address: queue, capabilities: ['queue']},
                                       credit_window: 0, autoaccept: false});
  let count = 0;
  receiver.add_credit(1);
  receiver.on('message', (ctx) => { count++; ctx.delivery.release(); });
  setTimeout(() => { console.log('received ' + count); conn.done = true; conn.close(); }, 1500);
} else {
  fail('unknown mode ' + mode);
}
