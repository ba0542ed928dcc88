#!/usr/bin/env node
// `hutchd`: the same as `hutch serve` (its flags are serve's; the state root comes from $HUTCH_ROOT).
'use strict';
process.argv.splice(2, 0, 'serve');
require('./boot.cjs');
