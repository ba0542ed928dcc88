// hutch serve. (Stub: filled in with its milestone.)
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch serve',
  summary: 'serve (not implemented yet)',
  flags: [],
  async run() {
    throw new HutchError('EUNSUPPORTED', 'serve is not implemented yet');
  },
};
