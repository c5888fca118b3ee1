// Sign-in: POST /api/v1/auth/token, then back to the page the user asked for.

import {signIn} from '../api.js';
import {field, fill, h} from '../dom.js';
import {t} from '../i18n.js';

export function render({view, notify, next}) {
  const email = h('input', {id: 'email', type: 'email', autocomplete: 'username', required: true});
  const password = h('input', {id: 'password', type: 'password', autocomplete: 'current-password',
    required: true});
  const message = h('p', {class: 'error', role: 'alert', id: 'signin-error'});
  const button = h('button', {type: 'submit'}, t('signin.submit'));
  const form = h('form', {class: 'card signin', 'aria-labelledby': 'signin-title', novalidate: true},
    h('h1', {id: 'signin-title'}, t('signin.title')),
    field(t('signin.email'), email),
    field(t('signin.password'), password),
    message,
    button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(message);
    if (!email.value.trim() || !password.value) {
      message.textContent = t('signin.missing');
      return;
    }
    button.disabled = true;
    try {
      await signIn(email.value.trim(), password.value);
      notify('');
      next();
    } catch (err) {
      message.textContent = err.status === 401 ? t('signin.failed') : t('error.load', {message: err.message});
    } finally {
      button.disabled = false;
    }
  });
  fill(view, form);
  email.focus();
}
