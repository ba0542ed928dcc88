// hutch image. (Stub: filled in with its milestone.)
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch image',
  summary: 'image (not implemented yet)',
  flags: [],
  async run() {
    throw new HutchError('EUNSUPPORTED', 'image is not implemented yet');
  },
};
